"""Call flows, intent prediction and speech recognition, driven through the `Channel` port."""
