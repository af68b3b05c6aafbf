from django.apps import AppConfig


class FlashsaleConfig(AppConfig):
    name = "flashsale"
    verbose_name = "Flash sale"

    def ready(self):
        from flashsale import authentication

        authentication.connect_signals()
