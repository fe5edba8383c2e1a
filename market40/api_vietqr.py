"""VietQR tools for accountants: decode what a stall holder shows them."""

from typing import Any

from ninja import Router, Schema, Status

from market40 import vietqr_service

router = Router(tags=["vietqr"])


class DecodeIn(Schema):
    payload: str


@router.post("/vietqr/decode", response=dict[str, Any])
def decode_vietqr(request, body: DecodeIn) -> dict[str, Any]:
    """The fields of any VietQR payload, or a 400 envelope saying exactly what is wrong
    (which tag, expected and found)."""
    return vietqr_service.decode_for_display(body.payload.strip())


class AccountIn(Schema):
    bin: str
    account_number: str
    account_name: str
    is_default: bool = True


class AccountOut(Schema):
    id: int
    bin: str
    bank_name: str
    account_number: str
    account_name: str
    is_default: bool
    active: bool

    @staticmethod
    def resolve_bin(obj) -> str:
        return obj.bank_id

    @staticmethod
    def resolve_bank_name(obj) -> str:
        return obj.bank.short_name


@router.get("/markets/{code}/accounts", response=list[AccountOut], tags=["accounts"])
def account_list(request, code: str):
    """The market's receiving bank accounts (where stall holders transfer to)."""
    market = _market(request, code)
    return list(market.accounts.select_related("bank").order_by("-is_default", "id"))


@router.post("/markets/{code}/accounts", response={201: AccountOut}, tags=["accounts"])
def account_create(request, code: str, body: AccountIn):
    """Add a receiving account; the BIN must be in the NAPAS bank list (not a prefix
    test) and the account number letters/digits only, at most 19."""
    from django.db import transaction
    from django.utils.translation import gettext as _

    from market40.errors import InvalidInput
    from market40.models import Bank, ReceivingAccount
    from market40.services import require_market_role, save_validated

    market = _market(request, code)
    require_market_role(request.auth, market, "manager")
    bank = Bank.objects.filter(bin=body.bin.strip()).first()
    if bank is None:
        raise InvalidInput(
            _("BIN “%(bin)s” không có trong danh sách ngân hàng NAPAS.") % {"bin": body.bin},
            extra={"fields": {"bin": [body.bin]}},
        )
    with transaction.atomic():
        if body.is_default:
            market.accounts.update(is_default=False)
        account = save_validated(
            ReceivingAccount(
                market=market,
                bank=bank,
                account_number=body.account_number,
                account_name=body.account_name.strip().upper(),
                is_default=body.is_default,
            )
        )
    return Status(201, account)


def _market(request, code: str):
    from django.shortcuts import get_object_or_404

    from market40.services import markets_for

    return get_object_or_404(markets_for(request.auth), code=code)
