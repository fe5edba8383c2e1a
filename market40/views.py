from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


def home(request: HttpRequest) -> HttpResponse:
    return redirect("manage-home")


@login_required
def manage_home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("market40")
