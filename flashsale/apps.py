from django.apps import AppConfig


class FlashsaleConfig(AppConfig):
    name = "flashsale"
    verbose_name = "Flash sale"
