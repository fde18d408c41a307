"""The HTTP routes, one module per resource."""

from earshot.service.routes import alerts, drift, faults, jobs, machines, pages, scoring, snippets, system

ROUTERS = [system.router, scoring.router, machines.router, snippets.router, alerts.router, jobs.router,
           drift.router, faults.router, pages.router]

__all__ = ["ROUTERS"]
