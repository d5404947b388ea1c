"""What the blade's views share: the tab's state from the URL, the user's columns, errors as clear 4xx answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse

from autopatch_portal.tenant import connection
from devices.columns import COLUMNS_BY_KEY, DEFAULT_COLUMNS, Column, columns_for
from devices.models import TAB_STATUSES, ColumnChoice, Tab
from devices.queries import FILTER_PARAMS, is_narrowed, search_text, sort_key

ENTRA_GROUP_URL = (
    "https://entra.microsoft.com/#view/Microsoft_AAD_IAM/GroupDetailsMenuBlade/~/Members/groupId/{}"
)
# URL parameters that describe a tab's state; anything else is ignored, never echoed back.
STATE_PARAMS = ("q", *FILTER_PARAMS, "sort", "page", "per_page")


def bad_request(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    """A clear refusal, readable in the blade (HTMX) and on its own page."""
    template = "devices/_error.html" if getattr(request, "htmx", False) else "devices/error_page.html"
    html = render_to_string(template, {"message": message, "status": status}, request=request)
    return HttpResponse(html, status=status)


def tab_or_404(tab: str) -> str:
    if tab not in TAB_STATUSES:
        raise Http404("No such tab.")
    return tab


def saved_columns(user, tab: str) -> list[Column]:
    """The user's columns for the tab, in their order; keys of columns that no longer exist are dropped."""
    choice = ColumnChoice.objects.filter(user=user, tab=tab).values_list("columns", flat=True).first()
    keys = [key for key in (choice or []) if key in COLUMNS_BY_KEY] or list(DEFAULT_COLUMNS)
    return columns_for(keys)


def parse_column_keys(raw: list[str]) -> list[Column]:
    """Column keys from a form or URL, in order; unknown or repeated keys raise ValueError (a forged list)."""
    keys = [key.strip() for item in raw for key in item.split(",") if key.strip()]
    if not keys:
        raise ValueError("Choose at least one column.")
    if len(set(keys)) != len(keys):
        raise ValueError("A column is listed twice.")
    try:
        return columns_for(keys)
    except KeyError as exc:
        raise ValueError(f"There is no column {exc.args[0]!r}.") from exc


def registration_group_link() -> tuple[str, bool]:
    """Where the blade's registration group link goes, and whether it leaves the portal: as in Autopatch, a real
    tenant's opens the group in the Entra admin center; the portal's own group page is in the navigation."""
    if connection.tenant_file() is None and settings.AUTOPATCH_REGISTRATION_GROUP_ID:
        return ENTRA_GROUP_URL.format(settings.AUTOPATCH_REGISTRATION_GROUP_ID), True
    return reverse("devices:registration_group"), False


@dataclass
class TabState:
    """A tab with the search, filters, sort and page its URL names."""

    tab: str
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_request(cls, request: HttpRequest, tab: str) -> TabState:
        return cls(tab, {key: request.GET.get(key, "") for key in STATE_PARAMS if request.GET.get(key, "")})

    @property
    def path(self) -> str:
        return reverse("devices:tab", args=[self.tab])

    def url(self, path: str | None = None, **changes: str | int | None) -> str:
        """This state's URL with some parameters changed (None removes one); a new search, filter or sort starts at page 1."""
        params = dict(self.params)
        if any(key != "page" for key in changes) and "page" not in changes:
            params.pop("page", None)
        for key, value in changes.items():
            if value in (None, ""):
                params.pop(key, None)
            else:
                params[key] = str(value)
        keys = [key for key in STATE_PARAMS if key in params] + [
            key for key in params if key not in STATE_PARAMS
        ]
        query = urlencode([(key, params[key]) for key in keys])
        return f"{path or self.path}{'?' + query if query else ''}"

    def matching(self) -> str:
        """The tab, search and filters as one value: "every device that matches", for an action."""
        keep = [
            ("tab", self.tab),
            *((key, self.params[key]) for key in ("q", *FILTER_PARAMS) if key in self.params),
        ]
        return urlencode(keep)

    def with_device(self, pk: int) -> str:
        """This state's URL with a device's details open in the fly-in."""
        url = self.url()
        return f"{url}{'&' if '?' in url else '?'}device={pk}"

    def export_url(self, columns: str) -> str:
        """The export of this state's rows (every page) with these columns ("all" or keys joined by commas)."""
        return self.url(path=f"{self.path}export.csv", page=None, per_page=None, columns=columns)

    def for_tab(self, tab: str) -> str:
        """Another tab keeps the search, sort and page size (not the status filter, which is per tab)."""
        keep = {key: self.params[key] for key in ("q", "sort", "per_page") if key in self.params}
        return TabState(tab, keep).url()

    @cached_property
    def sort(self) -> str:
        return sort_key(self.params)

    @property
    def q(self) -> str:
        return search_text(self.params)

    def narrowed(self) -> bool:
        return is_narrowed(self.tab, self.params)

    @property
    def tab_label(self) -> str:
        return Tab(self.tab).label
