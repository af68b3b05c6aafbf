from rest_framework import serializers

from flashsale.serializers import MAX_ID, StrictIntegerField, StrictSerializer
from orders.models import MAX_QUANTITY, Order, OrderStatus


class OrderSerializer(serializers.ModelSerializer):
    """The contract's Order object."""

    product_id = serializers.IntegerField(read_only=True)
    product_name = serializers.CharField(source="product.name", read_only=True)
    total_price = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)
    status = serializers.ChoiceField(choices=OrderStatus.choices, read_only=True)

    class Meta:
        model = Order
        fields = ["id", "product_id", "product_name", "quantity", "unit_price", "total_price", "status",
                  "created_at", "remaining_stock"]
        read_only_fields = fields


class PurchaseSerializer(StrictSerializer):
    product_id = StrictIntegerField(min_value=1, max_value=MAX_ID)
    quantity = StrictIntegerField(required=False, default=1, min_value=1, max_value=MAX_QUANTITY)


class OrderFilterSerializer(StrictSerializer):
    """Staff filters on GET /api/orders/ (plus pagination parameters, ignored here)."""

    product = StrictIntegerField(required=False, min_value=1, max_value=MAX_ID)
    user = serializers.CharField(required=False, max_length=150)
    status = serializers.ChoiceField(required=False, choices=OrderStatus.choices)
    page = serializers.CharField(required=False)
    page_size = serializers.CharField(required=False)

    def to_internal_value(self, data):
        # Query strings are text: turn a numeric ?product= into an int before strict checks.
        data = {key: data.get(key) for key in data}
        product = data.get("product")
        if isinstance(product, str) and product.isdigit():
            data["product"] = int(product)
        return super().to_internal_value(data)
