"""Fixtures of the deployment checks (helpers live in deploy_support.py)."""

from __future__ import annotations

import pytest
from deploy_support import OVERLAYS, Rendering, render


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    """Each Kustomize overlay in turn."""
    return str(request.param)


@pytest.fixture
def rendering(overlay: str) -> Rendering:
    """The overlay as ``kubectl kustomize`` renders it (rendered once per session)."""
    return render(overlay)
