"""Config keys on real instances: what is accepted is applied, the rest refused by name."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig

pytestmark = pytest.mark.kernel


def test_cloud_init_keys_need_an_image_with_cloud_init(manager) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidConfig, match="image 'debian' has no cloud-init"):
        manager.create("ci1", "debian", config={"cloud-init.user-data": "#cloud-config\n"})
    assert manager.list() == []
    manager.create("ci1", "debian")
    with pytest.raises(InvalidConfig, match="first boot of 'ci1' only"):
        manager.update_config("ci1", {"cloud-init.user-data": "#cloud-config\n"})
    assert "cloud-init.user-data" not in manager.get("ci1").config
