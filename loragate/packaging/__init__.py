"""Step 2: merge the adapter, convert to GGUF, quantize, write the Modelfile, check the result."""
