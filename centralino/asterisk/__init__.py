"""Asterisk protocols: sans-I/O FastAGI, AMI and AudioSocket codecs and their asyncio shells."""
