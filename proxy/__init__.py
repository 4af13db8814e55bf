"""spectr_proxy: Spectr's reverse proxy and OpenAI-compatible LLM gateway on mitmproxy."""

__version__ = "0.2.0"

# The version of the config document contract (MAJOR.MINOR), apart from the package's: a minor
# step only adds, a major one breaks. The proxy sends it when it fetches the document and
# refuses a document (or a portal) of a major it does not speak. A portal or a file from before
# contracts were versioned names none: it serves 1.0.
CONFIG_CONTRACT = "1.2"
CONFIG_CONTRACT_MAJORS = (1,)
