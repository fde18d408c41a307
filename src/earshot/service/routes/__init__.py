"""The HTTP routes, one module per resource."""

from earshot.service.routes import alerts, drift, jobs, machines, pages, scoring, snippets, system

ROUTERS = [system.router, scoring.router, machines.router, snippets.router, alerts.router, jobs.router,
           drift.router, pages.router]

__all__ = ["ROUTERS"]
