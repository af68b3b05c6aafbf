from django.urls import path

from dashboard.race_lab_views import race_lab

app_name = "dashboard"

urlpatterns: list = [
    path("race-lab/", race_lab, name="race-lab"),
]
