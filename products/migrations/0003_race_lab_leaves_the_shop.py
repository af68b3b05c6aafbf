"""The race lab moved to its own table (dashboard.LabShelf): drop its scratch rows and the flag."""

from django.db import migrations, models


def delete_lab_rows(apps, schema_editor):
    # Scratch rows only: a finished race deletes its own, so these are leftovers of
    # interrupted runs (and any orders a test wrote against them). Nothing to move.
    Product = apps.get_model("products", "Product")
    Order = apps.get_model("orders", "Order")
    lab = Product.objects.filter(is_lab=True)
    Order.objects.filter(product__in=lab).delete()
    lab.delete()


class Migration(migrations.Migration):

    dependencies = [
        ("products", "0002_slug_not_blank"),
        ("orders", "0002_stats_indexes"),
    ]

    operations = [
        migrations.RunPython(delete_lab_rows, migrations.RunPython.noop),
        migrations.RemoveIndex(model_name="product", name="product_shop_listing"),
        migrations.RemoveField(model_name="product", name="is_lab"),
        migrations.AddIndex(
            model_name="product",
            index=models.Index(fields=["sale_starts_at", "id"], name="product_listing"),
        ),
    ]
