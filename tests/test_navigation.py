"""The left navigation and each page's breadcrumb agree: a page's breadcrumb names the navigation section that
holds its link (for a device page, the blade it belongs to) and then, at most, the page itself."""

from __future__ import annotations

import re
from html import unescape

from tests.portal_client import signed_in

# The names a breadcrumb of each navigation section may start with.
SECTION_CRUMBS = {
    "Devices": ("Devices", "Windows Autopatch devices", "Windows Autopatch"),
    "Administration": ("Administration",),
}


def nav_sections(html: str) -> dict[str, list[tuple[str, str]]]:
    """Each navigation heading with the (address, text) of the links under it."""
    nav = re.search(r'<nav id="leftnav".*?</nav>', html, re.S).group(0)
    return {
        heading: re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', links)
        for heading, links in re.findall(r'<p class="nav-heading">([^<]+)</p>\s*<ul>(.*?)</ul>', nav, re.S)
    }


def breadcrumb(html: str) -> list[str]:
    crumb = re.search(r'<p class="breadcrumb">(.*?)</p>', html, re.S).group(1)
    return [part.strip() for part in unescape(re.sub(r"<[^>]+>", "", crumb)).split("›")]


def test_every_page_of_the_navigation_has_a_breadcrumb_in_its_section(alice, blade_tenant):
    client = signed_in(alice)
    sections = nav_sections(client.get("/devices/ready/").content.decode())
    assert set(sections) == set(SECTION_CRUMBS) and all(sections.values())
    for section, links in sections.items():
        for link, text in links:
            html = client.get(link, follow=True).content.decode()
            crumbs = breadcrumb(html)
            assert crumbs[0] in SECTION_CRUMBS[section], (text, crumbs)
            assert set(crumbs) <= {*SECTION_CRUMBS[section], text}, (text, crumbs)
            assert f'href="{link}" aria-current="page"' in html, text
