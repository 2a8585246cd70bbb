"""Conformance testing of Tessera execution providers against the ONNX backend test suite."""
