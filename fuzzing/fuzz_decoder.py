"""Coverage-guided fuzzing of the protocol decoder with atheris (libFuzzer).

    python fuzzing/fuzz_decoder.py -runs=100000 -max_len=2048

Any exception other than a documented ``ProtocolError`` is a crash and stops the run.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import protocol


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, 3)
    raw = fdp.ConsumeBytes(fdp.remaining_bytes())
    table = protocol.VISITOR if which & 1 else protocol.AGENT
    try:
        if which & 2:
            protocol.decode(raw, protocol.MSGPACK, table)
        else:
            protocol.decode(raw.decode("utf-8", "surrogatepass"), protocol.JSON, table)
    except UnicodeDecodeError:
        return  # not a text frame: the transport never hands such bytes to the JSON decoder
    except protocol.ProtocolError:
        return


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
