"""The staff page /dashboard/race-lab/: run the race lab and see the strategies side by side."""

from django import forms
from django.shortcuts import render

from dashboard.race_lab import STRATEGIES, run_race
from flashsale.accounts import staff_required

PAGE_MAX_BUYERS = 2000  # keep one page request to a few seconds


class RaceForm(forms.Form):
    buyers = forms.IntegerField(min_value=1, max_value=PAGE_MAX_BUYERS, initial=200)
    stock = forms.IntegerField(min_value=0, max_value=10_000, initial=50)
    strategies = forms.MultipleChoiceField(
        choices=[(name, name) for name in STRATEGIES], initial=list(STRATEGIES),
        widget=forms.CheckboxSelectMultiple,
    )


@staff_required
def race_lab(request):
    results = []
    if request.method == "POST":
        form = RaceForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            results = [run_race(strategy=name, buyers=data["buyers"], stock=data["stock"])
                       for name in STRATEGIES if name in data["strategies"]]
    else:
        form = RaceForm()
    return render(request, "dashboard/race_lab.html", {"form": form, "results": results})
