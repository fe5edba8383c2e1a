"""The settings module: environment-driven, and clean under `check --deploy`."""

import os

from tests.conftest import run_manage


def _production_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    secret = tmp_path / "secret"
    secret.write_text("x" * 30 + "-production-secret-key-with-enough-entropy-9f8e7d6c5b4a")
    env.update(
        DEBUG="0",
        HTTPS="1",
        ALLOWED_HOSTS="cho.example.vn",
        SECRET_KEY_FILE=str(secret),
        CONNECTION_SECRETS_KEY="connection-secrets-key-kept-apart-from-SECRET_KEY-4c3b2a19",
        MARKET40_VAR_DIR=str(tmp_path / "var"),
        DJANGO_SETTINGS_MODULE="market40.settings",
    )
    env.pop("SECRET_KEY", None)
    return env


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = run_manage(_production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_when_connection_secrets_follow_secret_key(tmp_path):
    env = _production_env(tmp_path)
    env.pop("CONNECTION_SECRETS_KEY")
    result = run_manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "payments.W001" in result.stdout + result.stderr


def test_debug_is_off_unless_asked_for(tmp_path):
    env = _production_env(tmp_path)
    env.pop("DEBUG")
    code = (
        "from django.conf import settings; "
        "print(settings.DEBUG, settings.TIME_ZONE, settings.LANGUAGE_CODE)"
    )
    result = run_manage(env, "shell", "--no-imports", "-c", code)
    assert result.stdout.split() == ["False", "Asia/Ho_Chi_Minh", "vi"], result.stderr


def test_database_url_selects_the_database(tmp_path):
    env = _production_env(tmp_path)
    env["DATABASE_URL"] = "postgres://someone@db.example:5433/market"
    code = (
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['ENGINE'], d['HOST'], d['PORT'], d['NAME'])"
    )
    result = run_manage(env, "shell", "--no-imports", "-c", code)
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "db.example",
        "5433",
        "market",
    ], result.stderr
