"""Real-browser tests of browser sign-in (issue 15): headless Chromium against a live authsvc."""
