from django.contrib.auth import get_user_model
from django.core.management import call_command

from products.models import Product


def test_seed_demo_makes_every_kind_of_sale_and_is_idempotent(db, capsys):
    call_command("seed_demo")
    statuses = {p.slug: p.status for p in Product.objects.all()}
    assert sorted(statuses.values()) == ["active", "active", "ended", "upcoming"]
    small, large = Product.objects.get(slug="midnight-sneakers"), Product.objects.get(slug="wireless-earbuds")
    assert small.stock < large.stock
    out = capsys.readouterr().out
    assert "staff" in out and "alice" in out
    staff = get_user_model().objects.get(username="staff")
    assert staff.is_staff and staff.check_password("staff-demo-pass")

    Product.objects.filter(slug="midnight-sneakers").update(stock=3, units_received=3)  # as if sold
    call_command("seed_demo")
    assert Product.objects.count() == 4
    assert get_user_model().objects.count() == 3
    assert Product.objects.get(slug="midnight-sneakers").stock == 3  # never resets stock
    assert Product.objects.get(slug="limited-vinyl").status == "upcoming"
