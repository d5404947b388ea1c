"""A bulk-add file too long for one request goes through a real Celery worker, as the page's form sends it."""

from __future__ import annotations

import pytest

from autopatch_portal.tenant import connection
from devices.group_members import INLINE_ROWS
from devices.models import GroupAddition
from devices.runs import discover_now
from tests.portal_client import signed_in
from tests.test_discovery_task import wait_while
from tests.test_registration_group import csv_file, members, upload


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_adds_the_file_the_form_sent(alice, builder, use_tenant, celery_worker_process):
    spare = builder.device("SPARE-09", member_of=None)
    use_tenant(builder)
    discover_now()
    worker = celery_worker_process()
    unknown = [f"0f0f0f0f-0000-4000-8000-{i:012d}" for i in range(INLINE_ROWS)]

    response = upload(signed_in(alice), csv_file(spare["id"], *unknown))

    assert response.status_code == 302
    addition = GroupAddition.objects.get()
    addition = wait_while(lambda: GroupAddition.objects.get(pk=addition.pk), lambda a: a.in_progress, worker)
    assert addition.status == GroupAddition.Status.DONE, addition.error
    assert (addition.done, addition.to_send) == (1, 1)
    html = signed_in(alice).get(response["Location"]).content.decode()
    assert f"1 added, {INLINE_ROWS} not found" in html
    connection._simulated.clear()  # the worker added it in its own process: read the tenant as it left it
    assert spare["id"] in members(connection.simulated_tenant(connection.tenant_file()))
