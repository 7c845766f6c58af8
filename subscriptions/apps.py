from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Subscriptions"

    def ready(self) -> None:
        from subscriptions import (  # noqa: F401
            catalog,  # connects its cache to model signals
            checks,  # registers Hookline's system checks
        )
