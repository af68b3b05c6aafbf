from django.urls import path

from waiting_room import views

app_name = "waiting_room"

urlpatterns = [
    path("products/<slug:slug>/line/", views.waiting_page, name="line"),
]
