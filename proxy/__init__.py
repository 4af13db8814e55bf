"""spectr_proxy: Spectr's reverse proxy and OpenAI-compatible LLM gateway on mitmproxy."""

__version__ = "0.2.0"
