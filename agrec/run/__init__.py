"""The run layer: running the stages and recording what they did.

``session`` (what a notebook opens: profile, run folder, report writer), ``rundir`` (stage records and
artefact checks), ``lineage`` (stage keys and their inputs), ``provenance`` (machine and library versions),
``runlock`` (one writer per run folder), ``report`` and ``htmlreport`` (the report folder's tables, figures,
results and HTML), and the front ends that drive the stages: ``pipeline`` (``agrec run`` / ``report`` /
``sweep``), ``seeds`` (``agrec seeds``), ``lab`` (the live lab) and ``launch`` (the ``torchrun`` launchers).

Nothing is imported here: a stage imports only the modules it needs (``agrec.run.session``,
``agrec.run.rundir``, …), and the front ends import the stages.
"""
