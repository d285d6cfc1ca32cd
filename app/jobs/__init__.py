"""Async jobs: ``Prefer: respond-async`` requests stored in the database, run by a runner in each
process, resumable after a restart, with signed webhooks.

- :mod:`app.jobs.intake`: where a request becomes a job (the header and ``webhook_url``);
- :mod:`app.jobs.service`: accept, show and cancel (what the routes in ``app/api/jobs.py`` call);
- :mod:`app.jobs.store`: the ``jobs`` table and the claims that share the work between processes;
- :mod:`app.jobs.runner`: the loop that runs jobs, renews their leases, delivers webhooks, sweeps;
- :mod:`app.jobs.tracking`: the upstream jobs recorded for resumption;
- :mod:`app.jobs.results`: answers stored without their images and rendered on read;
- :mod:`app.jobs.webhooks`: Standard Webhooks signing and the guarded POST;
- :mod:`app.jobs.models`, :mod:`app.jobs.blobs`: the shapes and the packed bytes.
"""
