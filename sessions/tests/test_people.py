"""People and roles, managed by the course admin: adding people, roles, deactivation."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from sessions.models import AuditEvent, Group, Membership, Participant, Role

User = get_user_model()


def _people(world):
    return reverse("sessions:people", args=[world.course.pk])


def _add(world):
    return reverse("sessions:person_add", args=[world.course.pk])


def _role_add(world, user):
    return reverse("sessions:role_add", args=[world.course.pk, user.pk])


def _role_remove(world, membership):
    return reverse("sessions:role_remove", args=[world.course.pk, membership.pk])


def _deactivate(world, user):
    return reverse("sessions:person_deactivate", args=[world.course.pk, user.pk])


def _db_state():
    return (
        User.objects.count(),
        sorted(Membership.objects.values_list("user_id", "course_id", "group_id", "role")),
        sorted(User.objects.values_list("pk", "is_active")),
        AuditEvent.objects.count(),
    )


# --- the list ----------------------------------------------------------------


def test_admin_sees_each_person_once_with_all_roles(client, world):
    Membership.objects.create(user=world.leader, course=world.course, role=Role.RESEARCHER)
    client.force_login(world.admin)
    response = client.get(_people(world))
    assert response.status_code == 200
    persons = {p["user"].username: [m.role for m in p["memberships"]] for p in response.context["persons"]}
    assert sorted(persons["leader"]) == ["leader", "researcher"]
    assert persons["coleader1"] == ["coleader"]
    assert "admin2" not in persons and "outsider" not in persons
    assert response.text.count('id="person-') == 7
    # Students are participants, not people of the course.
    assert "Aino Virtanen" not in response.text


def test_people_list_query_count_is_fixed(client, world, django_assert_num_queries):
    client.force_login(world.admin)
    client.get(_people(world))
    with django_assert_num_queries(8):
        client.get(_people(world))
    for n in range(5):
        user = User.objects.create_user(f"extra{n}", f"extra{n}@example.org")
        Membership.objects.create(user=user, course=world.course, group=world.other_group, role=Role.COLEADER)
        Membership.objects.create(user=user, course=world.course, role=Role.RESEARCHER)
        Membership.objects.create(user=user, course=world.course2, role=Role.RESEARCHER)
        Group.objects.create(course=world.course, name=f"Group {n}X")
    with django_assert_num_queries(8):
        response = client.get(_people(world))
    assert response.text.count('id="person-') == 12


# --- adding a person ---------------------------------------------------------


def test_adding_a_new_person_creates_the_account_and_mails_a_set_password_link(
    client, world, django_capture_on_commit_callbacks
):
    client.force_login(world.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            _add(world),
            {"email": "Maija.Lehto@Example.org", "first_name": "Maija", "last_name": "Lehto", "role": "coleader",
             "group": world.other_group.pk},
        )
    assert response.status_code == 302 and response["Location"] == _people(world)
    user = User.objects.get(email__iexact="maija.lehto@example.org")
    assert user.username == user.email and user.get_full_name() == "Maija Lehto"
    assert not user.has_usable_password()
    assert Membership.objects.filter(user=user, group=world.other_group, role=Role.COLEADER).exists()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [user.email]
    assert re.search(r"http://testserver/accounts/reset/[\w-]+/[\w-]+/", message.body)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert actions == {"user.create", "membership.add"}


def test_adding_an_existing_user_only_adds_the_role(client, world, django_capture_on_commit_callbacks):
    client.force_login(world.admin)
    users_before = User.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            _add(world), {"email": "LEADER2@example.org", "first_name": "", "last_name": "", "role": "researcher"}
        )
    assert response.status_code == 302
    assert User.objects.count() == users_before
    assert Membership.objects.filter(user=world.leader2, course=world.course, role=Role.RESEARCHER).exists()
    assert mail.outbox == []  # they have a password already
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["membership.add"]


def test_someone_who_never_set_a_password_gets_a_fresh_link(client, world, django_capture_on_commit_callbacks):
    pending = User.objects.create_user("pending@example.org", "pending@example.org")  # unusable password
    Membership.objects.create(user=pending, course=world.course, role=Role.RESEARCHER)
    client.force_login(world.admin)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(_add(world), {"email": "pending@example.org", "role": "coleader", "group": world.group.pk})
    assert len(mail.outbox) == 1


def test_adding_a_pending_person_again_resends_the_link(client, world, django_capture_on_commit_callbacks):
    pending = User.objects.create_user("pending@example.org", "pending@example.org")
    Membership.objects.create(user=pending, course=world.course, role=Role.RESEARCHER)
    memberships = Membership.objects.count()
    client.force_login(world.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_add(world), {"email": "pending@example.org", "role": "researcher"}, follow=True)
    assert "has not set a password: a new link was e-mailed" in response.text
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["pending@example.org"]
    assert Membership.objects.count() == memberships
    assert AuditEvent.objects.get().action == "user.link_resent"


@pytest.mark.parametrize(
    "data, error",
    [
        ({"role": "leader"}, "A leader needs a group: choose one."),
        ({"role": "coleader"}, "A co-leader needs a group: choose one."),
        ({"role": "admin", "group": "GROUP"}, "A course admin belongs to the whole course: leave the group empty."),
        ({"role": "researcher", "group": "GROUP"}, "A researcher belongs to the whole course"),
        ({"role": "leader", "group": "FOREIGN"}, "Choose a group of this course."),
        ({"role": "leader", "group": "GROUP", "email": "not-an-address"}, "Enter a valid email address."),
        ({"role": "leader", "group": "GROUP", "first_name": "", "last_name": ""}, "A new account needs a name"),
        ({"role": "leader", "group": "GROUP", "email": "leader@example.org"}, "leader is already leader of Group A."),
    ],
)
def test_bad_person_is_refused_with_a_clear_error_and_nothing_changes(client, world, data, error):
    data = {"email": "new@example.org", "first_name": "New", "last_name": "Person", **data}
    data["group"] = {"GROUP": world.group.pk, "FOREIGN": world.group2.pk}.get(data.get("group"), data.get("group", ""))
    client.force_login(world.admin)
    before = _db_state()
    response = client.post(_add(world), data)
    assert response.status_code == 200
    assert error in response.text.replace("&#x27;", "'")
    assert _db_state() == before
    assert mail.outbox == []


def test_person_add_page_shows_the_form(client, world):
    client.force_login(world.admin)
    response = client.get(_add(world))
    assert response.status_code == 200 and 'name="email"' in response.text


# --- adding and removing roles -----------------------------------------------


def test_admin_adds_a_further_role(client, world):
    client.force_login(world.admin)
    response = client.post(_role_add(world, world.coleader1), {"role": "leader", "group": world.other_group.pk})
    assert response.status_code == 302
    assert Membership.objects.filter(user=world.coleader1, group=world.other_group, role=Role.LEADER).exists()
    assert AuditEvent.objects.get().action == "membership.add"


def test_duplicate_or_invalid_role_is_refused(client, world):
    client.force_login(world.admin)
    before = _db_state()
    for data in [{"role": "coleader", "group": world.group.pk}, {"role": "admin", "group": world.group.pk},
                 {"role": "leader"}, {"role": "boss"}]:
        response = client.post(_role_add(world, world.coleader1), data, follow=True)
        assert "Role not added for coleader1" in response.text
    assert _db_state() == before


def test_role_add_is_only_for_people_of_this_course(client, world):
    client.force_login(world.admin)
    assert client.post(_role_add(world, world.outsider), {"role": "researcher"}).status_code == 404
    assert client.post(_role_add(world, world.admin2), {"role": "researcher"}).status_code == 404
    assert not Membership.objects.filter(user__in=[world.outsider, world.admin2], course=world.course).exists()


def test_removing_a_role_takes_effect_at_once(client, world):
    leader_client = Client()
    leader_client.force_login(world.leader)
    participant_url = reverse("sessions:participant_detail", args=[world.participants[0].pk])
    assert leader_client.get(participant_url).status_code == 200
    membership = Membership.objects.get(user=world.leader, role=Role.LEADER)
    client.force_login(world.admin)
    assert client.post(_role_remove(world, membership)).status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert leader_client.get(participant_url).status_code == 404
    event = AuditEvent.objects.get(action="membership.remove")
    assert event.changes["role"] == ["leader", None] and event.object_id == str(membership.pk)


def test_last_course_admin_cannot_be_removed(client, world):
    membership = Membership.objects.get(user=world.admin, course=world.course, role=Role.ADMIN)
    client.force_login(world.admin)
    before = _db_state()
    response = client.post(_role_remove(world, membership), follow=True)
    assert "last admin" in response.text
    assert _db_state() == before


def test_an_admin_may_step_down_when_another_admin_remains(client, world):
    Membership.objects.create(user=world.researcher2, course=world.course, role=Role.ADMIN)
    membership = Membership.objects.get(user=world.admin, course=world.course, role=Role.ADMIN)
    client.force_login(world.admin)
    response = client.post(_role_remove(world, membership))
    assert response["Location"] == reverse("sessions:dashboard")
    assert client.get(_people(world)).status_code == 404


def test_an_inactive_admin_does_not_count_as_the_remaining_admin(client, world):
    other = Membership.objects.create(user=world.researcher2, course=world.course, role=Role.ADMIN)
    world.researcher2.is_active = False
    world.researcher2.save()
    client.force_login(world.admin)
    mine = Membership.objects.get(user=world.admin, course=world.course, role=Role.ADMIN)
    client.post(_role_remove(world, mine))
    assert Membership.objects.filter(pk=mine.pk).exists()
    client.post(_role_remove(world, other))  # removing the inactive one is fine
    assert not Membership.objects.filter(pk=other.pk).exists()


def test_role_of_another_course_cannot_be_removed_from_here(client, world):
    foreign = Membership.objects.get(user=world.leader2)
    client.force_login(world.admin)
    assert client.post(_role_remove(world, foreign)).status_code == 404
    assert Membership.objects.filter(pk=foreign.pk).exists()


# --- deactivation ------------------------------------------------------------


def test_deactivation_switches_the_account_off_and_signs_it_out(client, world):
    coleader_client = Client()
    coleader_client.force_login(world.coleader2)
    assert coleader_client.get(reverse("password_change")).status_code == 200
    client.force_login(world.admin)
    response = client.post(_deactivate(world, world.coleader2), follow=True)
    assert "deactivated and signed out everywhere" in response.text
    world.coleader2.refresh_from_db()
    assert not world.coleader2.is_active
    assert coleader_client.get(reverse("password_change"))["Location"].startswith("/accounts/login/")
    event = AuditEvent.objects.get(action="user.deactivate")
    assert event.changes["sessions_ended"] == [None, 1]
    # Memberships stay as history; the people page marks the account.
    assert Membership.objects.filter(user=world.coleader2).exists()
    assert "Deactivated" in client.get(_people(world)).text


def test_deactivation_is_refused_for_someone_with_roles_elsewhere(client, world):
    Membership.objects.create(user=world.coleader2, course=world.course2, role=Role.RESEARCHER)
    client.force_login(world.admin)
    before = _db_state()
    response = client.post(_deactivate(world, world.coleader2), follow=True)
    assert "also has roles in a course you do not administer" in response.text
    assert _db_state() == before


def test_deactivation_allowed_when_admin_runs_every_course_of_that_person(client, world):
    Membership.objects.create(user=world.admin, course=world.course2, role=Role.ADMIN)
    Membership.objects.create(user=world.coleader2, course=world.course2, role=Role.RESEARCHER)
    client.force_login(world.admin)
    client.post(_deactivate(world, world.coleader2))
    world.coleader2.refresh_from_db()
    assert not world.coleader2.is_active


def test_you_cannot_deactivate_yourself(client, world):
    client.force_login(world.admin)
    before = _db_state()
    response = client.post(_deactivate(world, world.admin), follow=True)
    assert "You cannot deactivate your own account." in response.text
    assert _db_state() == before


def test_deactivating_someone_outside_the_course_is_404(client, world):
    client.force_login(world.admin)
    assert client.post(_deactivate(world, world.leader2)).status_code == 404
    world.leader2.refresh_from_db()
    assert world.leader2.is_active


# --- who may -----------------------------------------------------------------


@pytest.mark.parametrize(
    "who", ["leader", "coleader1", "researcher1", "other_leader", "outsider", "admin2", "leader2"]
)
def test_only_the_course_admin_manages_people(client, world, who):
    client.force_login(getattr(world, who))
    membership = Membership.objects.get(user=world.coleader2)
    before = _db_state()
    assert client.get(_people(world)).status_code == 404
    assert client.get(_add(world)).status_code == 404
    assert client.post(_add(world), {"email": "x@example.org", "first_name": "X", "role": "researcher"}).status_code == 404
    assert client.post(_role_add(world, world.coleader2), {"role": "researcher"}).status_code == 404
    assert client.post(_role_remove(world, membership)).status_code == 404
    assert client.post(_deactivate(world, world.coleader2)).status_code == 404
    assert _db_state() == before


def test_people_pages_need_login_and_the_right_method(client, world):
    membership = Membership.objects.get(user=world.coleader2)
    post_only = [_role_add(world, world.coleader2), _role_remove(world, membership), _deactivate(world, world.coleader2)]
    for url in [_people(world), _add(world), *post_only]:
        response = client.post(url) if url in post_only else client.get(url)
        assert response["Location"].startswith("/accounts/login/")
    client.force_login(world.admin)
    assert client.post(_people(world)).status_code == 405
    assert client.put(_add(world)).status_code == 405
    for url in post_only:
        assert client.get(url).status_code == 405
    assert _db_state()[1] == sorted(Membership.objects.values_list("user_id", "course_id", "group_id", "role"))


def test_people_page_never_shows_participants_identities(client, world):
    client.force_login(world.admin)
    text = client.get(_people(world)).text
    for participant in Participant.objects.all():
        assert participant.name not in text
        assert not participant.email or participant.email not in text
