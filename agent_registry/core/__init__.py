"""The domain core: plain Python over store ports and an injected clock."""
