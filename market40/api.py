"""The JSON API: one NinjaAPI under /api/v1/, one error envelope.

Every app mounts its own ``Router`` here (``api.add_router(...)``); this module only
holds what they all share: authentication (``market40.auth``: bearer token or session
with CSRF) and the exception handlers that turn *every* failure into
``{"code", "message", "extra"}``:

=====  ==================  ==========================================================
 400   ``DomainError``     its own ``code``/``status`` (``invalid``, ``conflict`` 409…)
 401   unauthenticated     no credentials, or a wrong / revoked bearer token
 403   forbidden           role not allowed in a market the caller can see; CSRF
 404   not_found           unknown object *or* one outside the caller's markets
 409   conflict            a protected row (``ProtectedError``) or a lost race
 422   invalid             request shape (ninja's ``ValidationError``), fields named
 500   server_error        logged with a reference; no traceback leaves the server
=====  ==================  ==========================================================
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from market40.api_markets import router as markets_router
from market40.api_vietqr import router as vietqr_router
from market40.auth import BearerTokenAuth, SessionCsrfAuth
from market40.errors import DomainError

logger = logging.getLogger(__name__)

ENVELOPE_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["code", "message", "extra"],
    "properties": {
        "code": {"type": "string", "description": "mã lỗi ổn định cho máy đọc"},
        "message": {"type": "string", "description": "thông báo cho người đọc (tiếng Việt)"},
        "extra": {
            "type": "object",
            "description": "chi tiết; lỗi dữ liệu có extra.fields = {trường: [lỗi…]}",
        },
    },
}

HTTP_ERROR_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    429: "throttled",
}

# Vietnamese wording for the pydantic error types a client meets in practice; others
# keep pydantic's (English) text.
PYDANTIC_MESSAGES = {
    "missing": "bắt buộc",
    "extra_forbidden": "không có trường này",
    "int_parsing": "phải là số nguyên",
    "int_type": "phải là số nguyên",
    "int_from_float": "phải là số nguyên",
    "decimal_parsing": "phải là số",
    "decimal_type": "phải là số",
    "float_parsing": "phải là số",
    "bool_parsing": "phải là true hoặc false",
    "bool_type": "phải là true hoặc false",
    "string_type": "phải là chuỗi",
    "date_parsing": "phải là ngày dạng YYYY-MM-DD",
    "date_from_datetime_parsing": "phải là ngày dạng YYYY-MM-DD",
    "date_type": "phải là ngày dạng YYYY-MM-DD",
    "literal_error": "phải là một trong: %(expected)s",
    "enum": "phải là một trong: %(expected)s",
    "greater_than_equal": "phải lớn hơn hoặc bằng %(ge)s",
    "less_than_equal": "phải nhỏ hơn hoặc bằng %(le)s",
    "string_too_long": "dài quá %(max_length)s ký tự",
    "model_attributes_type": "phải là một đối tượng JSON",
    "dict_type": "phải là một đối tượng JSON",
}

PARAM_SOURCES = {"body", "query", "path", "header", "cookie", "form", "file"}


class Market40API(NinjaAPI):
    def _get_urls(self) -> list[Any]:
        # Last, after every router: an unknown path under /api/v1/ answers with the
        # envelope too, not Django's HTML 404 page.
        return [*super()._get_urls(), path("<path:unknown>", unknown_path)]

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):  # type: ignore[override]
        # The envelope is documented once, as the default response of every operation.
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ENVELOPE_SCHEMA
        error = {
            "description": _("Lỗi: {code, message, extra}"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.setdefault("responses", {}).setdefault("default", error)
        return schema


api = Market40API(
    title="market40 API",
    version="1",
    urls_namespace="api",
    description=(
        "API thu phí chợ. Xác thực bằng phiên đăng nhập (kèm X-CSRFToken) hoặc "
        "Authorization: Bearer <khóa> (tạo bằng manage.py create_api_token). Tiền là số "
        "nguyên đồng (trường *_vnd); diện tích, chỉ số, số lượng là chuỗi thập phân. Mọi lỗi "
        "có dạng {code, message, extra}."
    ),
    auth=[BearerTokenAuth(), SessionCsrfAuth()],
)


def envelope(
    status: int, code: str, message: str, extra: dict[str, Any] | None = None
) -> HttpResponse:
    response = JsonResponse(
        {"code": code, "message": str(message), "extra": extra or {}},
        status=status,
        json_dumps_params={"ensure_ascii": False},
    )
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="market40"'
    return response


@csrf_exempt
def unknown_path(request: HttpRequest, unknown: str) -> HttpResponse:
    return envelope(404, "not_found", _("Không có địa chỉ API này: /%(path)s") % {"path": unknown})


@api.exception_handler(DomainError)
def on_domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return envelope(exc.status, exc.code, exc.message, exc.extra)


def _field_name(loc: list[Any] | tuple[Any, ...]) -> str:
    # ninja reports ("body", "payload", "tax_code") or ("query", "period"): drop the
    # source and the name of the body parameter, keep the field the client sent.
    parts = [str(p) for p in loc]
    if parts and parts[0] in PARAM_SOURCES:
        source, parts = parts[0], parts[1:]
        if source == "body" and len(parts) > 1:
            parts = parts[1:]
    return ".".join(parts) or "body"


def _field_message(error: dict[str, Any]) -> str:
    text = PYDANTIC_MESSAGES.get(error.get("type", ""))
    if text is None:
        return str(error.get("msg", ""))
    try:
        return text % (error.get("ctx") or {})
    except (KeyError, TypeError):
        return text.split(":")[0]


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    fields: dict[str, list[str]] = {}
    for error in exc.errors:
        fields.setdefault(_field_name(error.get("loc", ())), []).append(_field_message(error))
    details = " | ".join(f"{name}: {'; '.join(msgs)}" for name, msgs in fields.items())
    return envelope(
        422,
        "invalid",
        _("Dữ liệu không hợp lệ — %(details)s") % {"details": details},
        {"fields": fields},
    )


@api.exception_handler(AuthenticationError)
def on_unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    message = exc.message
    if type(exc) is AuthenticationError:  # ninja's own: nobody presented credentials
        message = _("Cần đăng nhập, hoặc gửi khóa API trong header Authorization: Bearer <khóa>.")
    return envelope(401, "unauthenticated", message)


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = HTTP_ERROR_CODES.get(exc.status_code, "error")
    message = {
        400: _("Không đọc được nội dung yêu cầu: cần JSON hợp lệ."),
        403: _("Bạn không có quyền thực hiện thao tác này."),
        404: _("Không tìm thấy."),
        429: _("Quá nhiều yêu cầu; vui lòng thử lại sau."),
    }.get(exc.status_code, str(exc))
    return envelope(exc.status_code, code, message)


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return envelope(404, "not_found", _("Không tìm thấy."))


@api.exception_handler(PermissionDenied)
def on_permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return envelope(403, "forbidden", _("Bạn không có quyền thực hiện thao tác này."))


@api.exception_handler(ProtectedError)
@api.exception_handler(RestrictedError)
def on_protected(request: HttpRequest, exc: Exception) -> HttpResponse:
    return envelope(409, "conflict", _("Không xóa được: dữ liệu này đang được dùng ở nơi khác."))


@api.exception_handler(IntegrityError)
def on_integrity_error(request: HttpRequest, exc: IntegrityError) -> HttpResponse:
    # Validation runs before every save, so a constraint that still fires means another
    # request wrote the same thing in between: a conflict, to be retried, not a 500.
    logger.warning("API integrity error on %s %s: %s", request.method, request.path, exc)
    return envelope(
        409,
        "conflict",
        _("Dữ liệu vừa bị thay đổi bởi một thao tác khác; vui lòng tải lại và thử lại."),
    )


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    # Our bug: log the traceback with a reference the caller can quote; send neither
    # the traceback nor the exception text (it may contain data or SQL).
    reference = uuid.uuid4().hex[:12]
    logger.exception("API error %s on %s %s", reference, request.method, request.path)
    return envelope(
        500,
        "server_error",
        _("Lỗi hệ thống (mã tham chiếu %(ref)s); vui lòng thử lại sau hoặc báo quản trị.")
        % {"ref": reference},
        {"reference": reference},
    )


api.add_router("", markets_router)
api.add_router("", vietqr_router)


# Every app's Router, mounted after the handlers above so that they apply to all.
from exports.api import router as exports_router  # noqa: E402
from invoicing.api import router as invoicing_router  # noqa: E402
from payments.api import router as payments_router  # noqa: E402

api.add_router("", payments_router)
api.add_router("/", invoicing_router)
api.add_router("", exports_router)
