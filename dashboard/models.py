"""The race lab's own table: scratch shelves that the shop never lists, sells or counts."""

from django.db import models


class LabShelf(models.Model):
    """One race's units on a shelf of their own; deleted when the race is over.

    Kept out of `products.Product` so no shop query (listing, stats, reconciliation,
    the purchase's lock) has to remember to leave scratch rows out.
    """

    strategy = models.CharField(max_length=20)
    stock = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "race lab shelf"

    def __str__(self) -> str:
        return f"Race lab shelf {self.pk} ({self.strategy})"
