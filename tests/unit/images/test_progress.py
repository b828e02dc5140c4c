"""debootstrap output -> progress events."""

from __future__ import annotations

from lxmgr.images.progress import STAGES, DebootstrapProgress, at, stage_span

LOG = """I: Target architecture can be executed
I: Retrieving InRelease
I: Checking Release signature
I: Retrieving Packages
I: Validating Packages
I: Resolving dependencies of required packages...
I: Retrieving adduser 3.134
I: Validating adduser 3.134
I: Retrieving libc6 2.36-9+deb12u10
I: Validating libc6 2.36-9+deb12u10
I: Chosen extractor for .deb packages: dpkg-deb
I: Extracting adduser...
I: Installing core packages...
I: Unpacking required packages...
I: Unpacking libc6:amd64...
I: Configuring required packages...
I: Configuring libc6:amd64...
I: Unpacking the base system...
I: Unpacking adduser...
I: Configuring adduser...
I: Base system installed successfully.
"""


def events(expected: int = 4) -> list:
    parser = DebootstrapProgress(expected_packages=expected)
    return [e for e in map(parser.feed, LOG.splitlines()) if e is not None]


def test_stages_in_order_and_fraction_monotonic() -> None:
    evs = events()
    stages = [e.stage for e in evs]
    order = list(STAGES)
    assert stages == sorted(stages, key=order.index)
    fractions = [e.fraction for e in evs]
    assert fractions == sorted(fractions)
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert evs[-1].stage == "finalize"


def test_package_events_name_the_package() -> None:
    messages = [e.message for e in events()]
    assert "Validating adduser" in messages
    assert "Unpacking libc6" in messages
    assert "Configuring adduser" in messages


def test_stages_after_download_use_retrieved_count() -> None:
    evs = [e for e in events(expected=1000) if e.stage == "install"]
    start, end = stage_span("install")
    # 2 packages retrieved: 4 install steps, the first is at 1/4 of the stage
    assert evs[0].fraction == round(start + (end - start) * 0.25, 4)
    assert evs[-1].fraction == round(start + (end - start) * 0.99, 4)


def test_real_debootstrap_lines() -> None:
    parser = DebootstrapProgress()
    ev = parser.feed("I: Extracting adduser...")
    assert ev is not None and ev.message == "Extracting adduser"
    assert parser.feed("I: Unpacking required packages...") is None
    assert parser.feed("I: Configuring the base system...") is None
    ev = parser.feed("I: Configuring libc6:amd64...")
    assert ev is not None and ev.message == "Configuring libc6"
    ev = parser.feed("I: Retrieving libc6 2.36-9+deb12u10")
    assert ev is None


def test_download_is_capped_below_stage_end() -> None:
    evs = [e for e in events(expected=1) if e.stage == "download"]
    assert all(e.fraction < stage_span("download")[1] for e in evs)


def test_other_lines_are_ignored() -> None:
    parser = DebootstrapProgress()
    assert parser.feed("W: something") is None
    assert parser.feed("") is None
    assert parser.feed("I: Checking component main on http://x...") is None


def test_at_clamps() -> None:
    assert at("done", 5.0, "x").fraction == 1.0
    assert at("resolve", -1, "x").fraction == 0.0
