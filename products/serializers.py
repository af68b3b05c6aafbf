from decimal import Decimal

from rest_framework import serializers

from flashsale.serializers import StrictIntegerField, StrictSerializer
from products.models import Product, SaleStatus
from products.services import MAX_RESTOCK

# A line admitting more than this per minute is no line; the bound keeps the gate's arithmetic exact.
MAX_ADMIT_PER_MINUTE = 1_000_000


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false and nothing else: no "yes", no 1."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class ProductSerializer(serializers.ModelSerializer):
    """The contract's Product object."""

    status = serializers.ChoiceField(choices=SaleStatus.choices, read_only=True)
    image_url = serializers.URLField(allow_null=True, read_only=True)

    class Meta:
        model = Product
        fields = ["id", "slug", "name", "description", "image_url", "price", "stock", "max_per_user",
                  "sale_starts_at", "sale_ends_at", "status",
                  "waiting_room", "admit_per_minute"]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["image_url"] = instance.image_url or None
        return data


class _ProductFieldsSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=220, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)
    image_url = serializers.URLField(required=False, allow_null=True, allow_blank=True, max_length=500)
    price = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0.01"))
    max_per_user = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=1_000_000)
    sale_starts_at = serializers.DateTimeField(required=False, allow_null=True)
    sale_ends_at = serializers.DateTimeField(required=False, allow_null=True)
    waiting_room = StrictBooleanField(required=False)
    admit_per_minute = StrictIntegerField(required=False, min_value=1, max_value=MAX_ADMIT_PER_MINUTE)


class ProductCreateSerializer(_ProductFieldsSerializer):
    stock = StrictIntegerField(min_value=0, max_value=MAX_RESTOCK)


class ProductUpdateSerializer(_ProductFieldsSerializer):
    """PATCH: every writable field but stock (stock moves only by restock and orders)."""


class RestockSerializer(StrictSerializer):
    quantity = StrictIntegerField(min_value=1, max_value=MAX_RESTOCK)


class StockSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    stock = serializers.IntegerField()
    status = serializers.ChoiceField(choices=SaleStatus.choices)
