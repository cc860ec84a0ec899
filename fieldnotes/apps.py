from django.apps import AppConfig


class FieldnotesConfig(AppConfig):
    name = "fieldnotes"
    verbose_name = "Field notes"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the research-eligibility receivers)
