from django.apps import AppConfig


class SessionsConfig(AppConfig):
    # `sessions` is django.contrib.sessions' label; ours must differ.
    name = "sessions"
    label = "balint_sessions"
    verbose_name = "Courses, groups and sessions"
