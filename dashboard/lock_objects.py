"""The only place race-lab rows are locked (the lab's `locked` strategy, as the shop locks a product)."""

from dashboard.models import LabShelf


def lab_shelf_for_update(shelf_id: int) -> LabShelf:
    """Lock one lab shelf until the end of the transaction, FOR NO KEY UPDATE like the shop's products."""
    return LabShelf.objects.select_for_update(no_key=True).get(pk=shelf_id)
