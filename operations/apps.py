from django.apps import AppConfig

from config.tracing import tracing_start


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        from operations import receivers  # models are loaded only now

        receivers.connect()
        # Before the web server loads its middleware, and before the first database connection.
        tracing_start()
