"""The engine: given a stack (stack.py), it converges hosts: declare -> probe -> plan -> apply ->
handlers -> verify -> report. It knows no role, template or path of a stack."""
