"""mitmproxy addons of spectr_proxy, one concern per class."""
