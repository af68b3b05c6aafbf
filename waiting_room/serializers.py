from rest_framework import serializers

from products.models import SaleStatus


class StandingSerializer(serializers.Serializer):
    """The contract's queue object (section 8)."""

    ticket = serializers.CharField(help_text="Opaque; the same on every join and poll of one shopper.")
    position = serializers.IntegerField(help_text="Not-yet-admitted tickets ahead of this one; 0 once admitted.")
    admitted = serializers.BooleanField()
    # `pass` is a Python keyword; the field is named by source.
    retry_after = serializers.IntegerField(
        allow_null=True, help_text="Whole seconds (>= 1) to wait before polling again; null once admitted or closed."
    )
    status = serializers.ChoiceField(choices=SaleStatus.choices, help_text="The product's sale status.")

    def get_fields(self):
        fields = super().get_fields()
        ordered = {name: fields[name] for name in ("ticket", "position", "admitted")}
        ordered["pass"] = serializers.CharField(
            source="admission_pass", allow_null=True,
            help_text="Null until admitted; then send it as the `Admission-Pass` header of `POST /api/orders/`.",
        )
        ordered["pass_expires_at"] = serializers.DateTimeField(allow_null=True)
        ordered["retry_after"] = fields["retry_after"]
        ordered["status"] = fields["status"]
        return ordered
