"""VietQR tools for accountants: decode what a stall holder shows them."""

from typing import Any

from ninja import Router, Schema

from market40 import vietqr_service

router = Router(tags=["vietqr"])


class DecodeIn(Schema):
    payload: str


@router.post("/vietqr/decode", response=dict[str, Any])
def decode_vietqr(request, body: DecodeIn) -> dict[str, Any]:
    """The fields of any VietQR payload, or a 400 envelope saying exactly what is wrong
    (which tag, expected and found)."""
    return vietqr_service.decode_for_display(body.payload.strip())
