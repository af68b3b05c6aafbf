from django.urls import path

from dashboard import views
from dashboard.race_lab_views import race_lab

app_name = "dashboard"

urlpatterns = [
    path("", views.dashboard, name="home"),
    path("race-lab/", race_lab, name="race-lab"),
]
