"""Reports and exports: request, follow, download; and REFI-QDA import.

Course admins and researchers of a course use these pages; anyone else gets a
404, for the course and for each of its reports and files. The building is
done in the background (analysis.jobs); these views only read the rows.
"""

from __future__ import annotations

import io
import os


from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Prefetch
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sessions import audit
from sessions.access import get_access, get_course_for
from sessions.models import Course, Membership, Role

from .. import jobs
from ..models import Report, ReportFile

User = get_user_model()

REPORT_ROLES = (Role.ADMIN, Role.RESEARCHER)
MAX_UPLOAD_BYTES = 100 * 1024 * 1024

FILES_WITHOUT_CONTENT = Prefetch("files", queryset=ReportFile.objects.defer("content").order_by("name"))
# Files are listed in this order of their extensions: the report first, the project last.
FILE_ORDER = [".pdf", ".html", ".xlsx", ".csv", ".qdpx", ".qdc"]


def ordered_files(report: Report) -> list[ReportFile]:
    def key(file: ReportFile):
        ext = os.path.splitext(file.name)[1].lower()
        return (FILE_ORDER.index(ext) if ext in FILE_ORDER else len(FILE_ORDER), file.name)

    return sorted(report.files.all(), key=key)


# --- Forms ----------------------------------------------------------------------------


class ReportRequestForm(forms.Form):
    kinds = forms.MultipleChoiceField(
        choices=Report.Kind.choices, widget=forms.CheckboxSelectMultiple, label="What to build",
        error_messages={"required": "Choose at least one thing to build."},
    )
    include_memos = forms.BooleanField(
        required=False, label="Include memos",
        help_text="Researchers' memos, in the summary report's appendix and as notes in the .qdpx project. "
                  "Leave this off for files shown outside the research group.",
    )


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, user):
        full = user.get_full_name()
        return f"{full} ({user.get_username()})" if full else user.get_username()


class QdaImportForm(forms.Form):
    file = forms.FileField(
        label="REFI-QDA file",
        help_text="A codebook (.qdc) or a whole project (.qdpx) exported from NVivo, ATLAS.ti, MAXQDA, "
                  "QualCoder or this app.",
    )
    group_name = forms.CharField(
        max_length=100, initial="Imported", label="Group for the imported texts",
        help_text="A .qdpx project's texts become field notes of sessions in this group (created if needed).",
    )
    author = UserChoiceField(
        queryset=User.objects.none(), required=False, empty_label="Me",
        label="Author of the imported notes", help_text="Recorded as the author of each imported field note.",
    )

    def __init__(self, *args, course: Course, may_import_codebook: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.may_import_codebook = may_import_codebook
        member_ids = Membership.objects.filter(course=course).values("user_id")
        self.fields["author"].queryset = User.objects.filter(pk__in=member_ids, is_active=True).order_by("username")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        name = upload.name.lower()
        if name.endswith(".qdc"):
            if not self.may_import_codebook:
                raise forms.ValidationError("Only the course's researchers import a codebook.")
            self.kind = "qdc"
        elif name.endswith(".qdpx"):
            self.kind = "qdpx"
        else:
            raise forms.ValidationError("Choose a .qdc codebook or a .qdpx project.")
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"The file is larger than {filesizeformat(MAX_UPLOAD_BYTES)}.")
        return upload


# --- Helpers --------------------------------------------------------------------------


def _report_for(request, pk: int) -> Report:
    """A report of a course where the user is admin or researcher; a 404 otherwise."""
    course_ids = get_access(request).course_ids(*REPORT_ROLES)
    try:
        return (
            Report.objects.select_related("course", "requested_by")
            .prefetch_related(FILES_WITHOUT_CONTENT)
            .get(pk=pk, course_id__in=course_ids)
        )
    except Report.DoesNotExist:
        raise Http404("No such report.") from None


def _file_json(report: Report, file: ReportFile) -> dict:
    return {
        "name": file.name,
        "size": file.size,
        "size_display": filesizeformat(file.size),
        "content_type": file.content_type,
        "sha256": file.sha256,
        "url": reverse("analysis:report_download", args=[report.pk, file.name]),
    }


def _status_json(report: Report) -> dict:
    done = report.status == Report.Status.DONE
    return {
        "id": report.pk,
        "status": report.status,
        "status_display": report.get_status_display(),
        "finished": report.is_finished,
        "progress": report.progress,
        "stage": report.stage,
        "error": report.error,
        "data_hash": report.data_hash,
        "files": [_file_json(report, f) for f in ordered_files(report)] if done else [],
    }


def _list_page(request, course: Course, form: ReportRequestForm, status: int = 200):
    reports = (
        Report.objects.filter(course=course)
        .select_related("requested_by")
        .prefetch_related(FILES_WITHOUT_CONTENT)
        .order_by("-requested_at", "-pk")
    )
    for report in reports:
        report.ordered_files = ordered_files(report)
    return render(
        request, "analysis/report_list.html",
        {"course": course, "reports": reports, "form": form},
        status=status,
    )


# --- Pages ----------------------------------------------------------------------------


@login_required
@require_GET
def report_list(request, pk):
    course = get_course_for(request, pk, *REPORT_ROLES)
    form = ReportRequestForm(initial={"kinds": Report.Kind.values})
    return _list_page(request, course, form)


@login_required
@require_POST
def report_new(request, pk):
    course = get_course_for(request, pk, *REPORT_ROLES)
    form = ReportRequestForm(request.POST)
    if not form.is_valid():
        return _list_page(request, course, form, status=400)
    try:
        report = jobs.report_request(
            course=course, kinds=form.cleaned_data["kinds"], include_memos=form.cleaned_data["include_memos"],
            actor=request.user,
        )
    except jobs.ReportError as error:
        form.add_error(None, str(error))
        return _list_page(request, course, form, status=400)
    report.refresh_from_db()
    if report.duplicate:
        messages.info(request, "You asked for this a moment ago; this is that request.")
    elif report.status == Report.Status.DONE:
        messages.success(request, "The report is ready.")
    elif report.status == Report.Status.FAILED:
        messages.error(request, "The report could not be built; the reason is below.")
    elif report.stage == jobs.UNAVAILABLE_STAGE:
        messages.warning(
            request,
            "Background work is unavailable right now. Your request is saved, and the report will be built "
            "as soon as it is back.",
        )
    else:
        messages.success(request, "Requested. The report is built in the background; this page follows it.")
    return redirect("analysis:report_detail", pk=report.pk)


@login_required
@require_GET
def report_detail(request, pk):
    report = _report_for(request, pk)
    return render(request, "analysis/report_detail.html", {
        "course": report.course, "report": report, "files": ordered_files(report), "report_title": f"Report {report.pk}",
        "kind_labels": [Report.Kind(k).label for k in report.kinds if k in Report.Kind.values],
    })


@never_cache
@login_required
@require_GET
def report_status(request, pk):
    """The report's state for the progress page to poll."""
    return JsonResponse(_status_json(_report_for(request, pk)))


@never_cache
@login_required
@require_GET
def report_download(request, pk, name):
    report = _report_for(request, pk)
    if report.status != Report.Status.DONE:
        raise Http404("The report is not ready.")
    try:
        file = ReportFile.objects.get(report=report, name=name)
    except ReportFile.DoesNotExist:
        raise Http404("No such file.") from None
    audit.record(
        actor=request.user, action="report.download", obj=report, course=report.course,
        summary=f"Downloaded {file.name} of report {report.pk}",
        changes={"file": file.name, "sha256": file.sha256},
    )
    response = FileResponse(
        io.BytesIO(bytes(file.content)), as_attachment=True,
        filename=f"{slugify(report.course.name)[:60] or 'course'}-report-{report.pk}-{file.name}",
        content_type=file.content_type,
    )
    response.block_size = 64 * 1024
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def qda_import(request, pk):
    """Import a REFI-QDA codebook (researchers) or whole project (researchers, admin) into the course.

    All or nothing: a file that cannot be mapped completely is refused with
    the importer's reason and leaves nothing behind.
    """
    course = get_course_for(request, pk, *REPORT_ROLES)
    is_researcher = Role.RESEARCHER in get_access(request).roles_in_course(course.pk)
    form = QdaImportForm(request.POST or None, request.FILES or None, course=course,
                         may_import_codebook=is_researcher)
    if request.method == "POST" and form.is_valid() and _import(request, course, form):
        return redirect("analysis:qda_import", pk=course.pk)
    return render(request, "analysis/qda_import.html", {"course": course, "form": form, "is_researcher": is_researcher},
                  status=400 if request.method == "POST" else 200)


def _import(request, course: Course, form: QdaImportForm) -> bool:
    """Run the import and say what it did; False (the reason on the form) when nothing was imported."""
    try:
        from .. import qda
    except ImportError:
        form.add_error(None, "REFI-QDA import is not available in this installation.")
        return False
    data = form.cleaned_data["file"].read()
    try:
        # One transaction: an import that fails part-way leaves nothing behind.
        with transaction.atomic():
            if form.kind == "qdc":
                count = qda.import_qdc(course=course, data=data, actor=request.user)
            else:
                summary = qda.import_qdpx(
                    course=course, data=data, actor=request.user,
                    group_name=form.cleaned_data["group_name"].strip() or "Imported",
                    author=form.cleaned_data["author"],
                )
    except qda.QdaError as error:
        reason = str(error)
        form.add_error("file", reason if "nothing" in reason.lower() else f"{reason} Nothing was imported.")
        return False
    if form.kind == "qdc":
        messages.success(request, f"Imported the codebook: {count} new code{'s' if count != 1 else ''}; "
                                  "codes whose names the codebook had already were left as they were.")
        return True
    warnings = list(getattr(summary, "warnings", []) or [])
    message = getattr(summary, "message", str(summary))
    for warning in warnings:  # the message ends with them; each is shown on its own instead
        message = message.replace(" " + warning, "")
    messages.success(request, message)
    for warning in warnings:
        messages.warning(request, warning)
    return True
