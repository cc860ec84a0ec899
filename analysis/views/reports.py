"""PLACEHOLDER: replaced by the real views."""
from django.http import Http404


def report_list(request, pk):
    raise Http404


def report_new(request, pk):
    raise Http404


def report_detail(request, pk):
    raise Http404


def report_status(request, pk):
    raise Http404


def report_download(request, pk, name):
    raise Http404


def qda_import(request, pk):
    raise Http404
