from django.apps import AppConfig


class FieldnotesConfig(AppConfig):
    name = "fieldnotes"
    verbose_name = "Field notes"
