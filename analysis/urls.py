from django.urls import path

from .views import cases, codebook, coding, memos, reports, retrieval, rounds

app_name = "analysis"

urlpatterns = [
    # Codebook
    path("courses/<int:pk>/codebook/", codebook.codebook, name="codebook"),
    path("courses/<int:pk>/codebook/start/", codebook.codebook_start, name="codebook_start"),
    path("courses/<int:pk>/codebook/history/", codebook.codebook_history, name="codebook_history"),
    path("courses/<int:pk>/codebook/categories/new/", codebook.category_new, name="category_new"),
    path("categories/<int:pk>/edit/", codebook.category_edit, name="category_edit"),
    path("courses/<int:pk>/codebook/codes/new/", codebook.code_new, name="code_new"),
    path("codes/<int:pk>/", codebook.code_detail, name="code_detail"),
    path("codes/<int:pk>/edit/", codebook.code_edit, name="code_edit"),
    path("codes/<int:pk>/merge/", codebook.code_merge, name="code_merge"),
    path("codes/<int:pk>/split/", codebook.code_split, name="code_split"),
    path("codes/<int:pk>/retire/", codebook.code_retire, name="code_retire"),
    path("courses/<int:pk>/codes.css", codebook.codes_css, name="codes_css"),
    # Coding
    path("courses/<int:pk>/coding/", coding.coding_index, name="coding_index"),
    path("sections/<int:pk>/code/", coding.coding_page, name="coding_page"),
    path("sections/<int:pk>/segments/", coding.segment_create, name="segment_create"),
    path("segments/<int:pk>/", coding.segment_update, name="segment_update"),
    path("segments/<int:pk>/delete/", coding.segment_delete, name="segment_delete"),
    # Cases
    path("cases/<int:pk>/analysis/", cases.case_analysis, name="case_analysis"),
    path("cases/<int:pk>/codings/", cases.case_coding_set, name="case_coding_set"),
    path("case-codings/<int:pk>/delete/", cases.case_coding_delete, name="case_coding_delete"),
    # Memos
    path("courses/<int:pk>/memos/", memos.memo_list, name="memo_list"),
    path("courses/<int:pk>/memos/new/", memos.memo_new, name="memo_new"),
    path("memos/<int:pk>/edit/", memos.memo_edit, name="memo_edit"),
    # Retrieval and matrices
    path("courses/<int:pk>/segments/", retrieval.segment_search, name="segment_search"),
    path("courses/<int:pk>/matrix/", retrieval.matrix, name="matrix"),
    path("courses/<int:pk>/cooccurrence/", retrieval.cooccurrence, name="cooccurrence"),
    path("courses/<int:pk>/saturation/", retrieval.saturation, name="saturation"),
    # Double coding
    path("courses/<int:pk>/rounds/", rounds.round_list, name="round_list"),
    path("courses/<int:pk>/rounds/new/", rounds.round_new, name="round_new"),
    path("rounds/<int:pk>/", rounds.round_detail, name="round_detail"),
    path("rounds/<int:pk>/close/", rounds.round_close, name="round_close"),
    path("rounds/<int:pk>/agreement/", rounds.round_agreement, name="round_agreement"),
    path("rounds/<int:pk>/disagreements/<int:section_pk>/<int:code_pk>/", rounds.disagreement, name="disagreement"),
    # Reports, exports and REFI-QDA import
    path("courses/<int:pk>/reports/", reports.report_list, name="report_list"),
    path("courses/<int:pk>/reports/new/", reports.report_new, name="report_new"),
    path("reports/<int:pk>/", reports.report_detail, name="report_detail"),
    path("reports/<int:pk>/status/", reports.report_status, name="report_status"),
    path("reports/<int:pk>/files/<str:name>", reports.report_download, name="report_download"),
    path("courses/<int:pk>/import/", reports.qda_import, name="qda_import"),
]
