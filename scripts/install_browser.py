"""Install Debian's chromium for the web page's browser test, where that is possible.

Called by ``make install`` / ``make test``. Playwright drives the system browser
(``executable_path``), so no browser is ever downloaded by Playwright itself. This script only
acts when /usr/bin/chromium is missing and we are root with apt-get; it never fails the build
(it always exits 0) and says what it did, so a skipped browser test can be traced back here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CHROMIUM = "/usr/bin/chromium"
APT_TIMEOUT_S = 600


def _apt(*args: str) -> bool:
    cmd = ["apt-get", "-q", *args]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=APT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        print(f"install_browser: '{' '.join(cmd)}' took over {APT_TIMEOUT_S} s; gave up")
        return False
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        print(f"install_browser: '{' '.join(cmd)}' failed ({done.returncode}): " + " | ".join(tail))
        return False
    return True


def main() -> int:
    """Install chromium if missing and possible; always returns 0."""
    if os.path.exists(CHROMIUM):
        print(f"install_browser: {CHROMIUM} present; nothing to do")
        return 0
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        print(f"install_browser: {CHROMIUM} missing and not root; the browser test will be "
              "skipped (install Debian's 'chromium' package to run it)")
        return 0
    if shutil.which("apt-get") is None:
        print(f"install_browser: {CHROMIUM} missing and no apt-get; the browser test will be "
              "skipped")
        return 0
    print("install_browser: installing chromium with apt-get (once) ...")
    if _apt("update") and _apt("install", "-y", "--no-install-recommends", "chromium"):
        ok = os.path.exists(CHROMIUM)
        print(f"install_browser: chromium {'installed at ' + CHROMIUM if ok else 'not found'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - the build must go on whatever happens here
        print(f"install_browser: {type(e).__name__}: {e}")
        sys.exit(0)
