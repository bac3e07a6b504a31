"""Messages of tests/fixtures/protobuf/readings.proto for tests/integration/protobuf.sh, built with
python3-protobuf from the descriptor set (no generated code), and the exact comparison of the
rows PostgreSQL holds with the values sent.

  protobuf_messages.py generate SET DIR N   DIR/msg/<id> bodies, DIR/expected.json
  protobuf_messages.py compare DIR READINGS.tsv SAMPLES.tsv
"""
import base64
import json
import math
import os
import random
import struct
import sys

I64 = (-(2**63), 2**63 - 1)
U64 = 2**64 - 1


def message_class(descriptor_set, name):
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fds = descriptor_pb2.FileDescriptorSet()
    with open(descriptor_set, "rb") as f:
        fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)
    descriptor = pool.FindMessageTypeByName(name)
    factory = message_factory.MessageFactory(pool)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return factory.GetPrototype(descriptor)


def f32(x):
    """The float a float field holds after x is sent."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def values(i, rnd):
    """Field values of message i: boundaries first, then random ones."""
    if i == 1:
        return dict(f_double=float("nan"), f_float=float("inf"), f_int32=2**31 - 1,
                    f_int64=I64[0], f_uint32=2**32 - 1, f_uint64=U64, f_sint32=-(2**31),
                    f_sint64=I64[0], f_fixed32=2**32 - 1, f_fixed64=U64, f_sfixed32=-(2**31),
                    f_sfixed64=I64[1], f_bool=True, f_string="tab\there\nnewline \\ \"q\" é 😀",
                    f_bytes=b"\x00\xff\x00\\\t\n\xfe", site="hall A", floor=-2,
                    quality=2, taken=(-2, 123456000), maybe=0,
                    samples=[(1, 0.1, b"\x00"), (2, -1e300, b"\xff" * 3)])
    if i == 2:
        return dict(f_double=float("-inf"), f_float=float("nan"), f_int32=-(2**31),
                    f_int64=I64[1], f_uint32=0, f_uint64=0, f_sint32=2**31 - 1,
                    f_sint64=I64[1], f_fixed32=0, f_fixed64=0, f_sfixed32=2**31 - 1,
                    f_sfixed64=I64[0], f_bool=False, f_string="", f_bytes=b"",
                    site="", floor=0, quality=1, taken=(-62135596800, 0), maybe=-5,
                    samples=[])
    if i == 3:
        return {}  # every field at its default: an empty body
    rnd_bytes = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40)))
    return dict(
        f_double=rnd.choice([rnd.uniform(-1e6, 1e6), rnd.random() * 10 ** rnd.randrange(-300, 300),
                             -0.0, 5e-324, 1.7976931348623157e308]),
        f_float=f32(rnd.uniform(-1e30, 1e30)),
        f_int32=rnd.randrange(-(2**31), 2**31), f_int64=rnd.randrange(*I64),
        f_uint32=rnd.randrange(0, 2**32), f_uint64=rnd.randrange(0, U64 + 1),
        f_sint32=rnd.randrange(-(2**31), 2**31), f_sint64=rnd.randrange(*I64),
        f_fixed32=rnd.randrange(0, 2**32), f_fixed64=rnd.randrange(0, U64 + 1),
        f_sfixed32=rnd.randrange(-(2**31), 2**31), f_sfixed64=rnd.randrange(*I64),
        f_bool=rnd.random() < 0.5,
        f_string="".join(rnd.choice("abc é\t\\\"😀\n") for _ in range(rnd.randrange(0, 30))),
        f_bytes=rnd_bytes, site="site-%d" % i, floor=rnd.randrange(-100, 100),
        quality=rnd.randrange(0, 3),
        # 1900..2100, whole microseconds (PostgreSQL keeps microseconds)
        taken=(rnd.randrange(-2208988800, 4102444800), rnd.randrange(0, 1000000) * 1000),
        maybe=rnd.choice([None, rnd.randrange(-1000, 1000)]),
        samples=[(rnd.randrange(0, 2**32), rnd.uniform(-1, 1),
                  bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 8))))
                 for _ in range(rnd.randrange(0, 6))])


def generate(descriptor_set, out, n):
    Reading = message_class(descriptor_set, "rmq2pg.test.Reading")
    rnd = random.Random(17)
    os.makedirs(f"{out}/msg", exist_ok=True)
    expected = {}
    for i in range(1, n + 1):
        v = values(i, rnd)
        m = Reading(id=i, device_id="dev-%d" % i)
        for k in ("f_double", "f_float", "f_int32", "f_int64", "f_uint32", "f_uint64", "f_sint32",
                  "f_sint64", "f_fixed32", "f_fixed64", "f_sfixed32", "f_sfixed64", "f_bool",
                  "f_string", "f_bytes", "quality"):
            if k in v:
                setattr(m, k, v[k])
        if "site" in v:
            m.location.site = v["site"]
            m.location.floor = v["floor"]
        if "taken" in v:
            m.taken_at.seconds, m.taken_at.nanos = v["taken"]
        if v.get("maybe") is not None:
            m.maybe = v["maybe"]
        for channel, value, raw in v.get("samples", []):
            s = m.samples.add()
            s.channel, s.value, s.raw = channel, value, raw
        with open(f"{out}/msg/{i}", "wb") as f:
            f.write(m.SerializeToString())
        # What PostgreSQL must hold, from the message as parsed back (floats as the wire has them).
        back = Reading()
        back.ParseFromString(m.SerializeToString())
        has_location = back.HasField("location")
        has_taken = back.HasField("taken_at")
        expected[i] = {
            "device": back.device_id,
            "f_double": repr(back.f_double), "f_float": repr(back.f_float),
            **{k: str(getattr(back, k)) for k in (
                "f_int32", "f_int64", "f_uint32", "f_uint64", "f_sint32", "f_sint64",
                "f_fixed32", "f_fixed64", "f_sfixed32", "f_sfixed64")},
            "f_bool": "t" if back.f_bool else "f",
            "f_string": back.f_string, "f_bytes": back.f_bytes.hex(),
            "site": back.location.site if has_location else None,
            "floor": str(back.location.floor) if has_location else None,
            "quality": Reading.DESCRIPTOR.fields_by_name["quality"].enum_type
                       .values_by_number[back.quality].name,
            "taken_us": str(back.taken_at.seconds * 1000000 + back.taken_at.nanos // 1000)
                        if has_taken else None,
            "maybe": str(back.maybe) if back.HasField("maybe") else None,
            "samples": [[str(j), str(s.channel), repr(s.value), s.raw.hex()]
                        for j, s in enumerate(back.samples)],
        }
    with open(f"{out}/expected.json", "w") as f:
        json.dump(expected, f)


COLUMNS = ["device", "f_double", "f_float", "f_int32", "f_int64", "f_uint32", "f_uint64",
           "f_sint32", "f_sint64", "f_fixed32", "f_fixed64", "f_sfixed32", "f_sfixed64",
           "f_bool", "f_string", "f_bytes", "site", "floor", "quality", "taken_us", "maybe"]


def same_float(expected_repr, actual_text, single):
    """PostgreSQL's shortest text and Python's repr of one value, compared as bits."""
    want = float(expected_repr)
    got = float(actual_text.replace("Infinity", "inf"))
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    pack = "<f" if single else "<d"
    return struct.pack(pack, want) == struct.pack(pack, got)


def unescape(field):
    """A field of COPY TO's text format."""
    if field == "\\N":
        return None
    out, i = [], 0
    while i < len(field):
        c = field[i]
        if c == "\\" and i + 1 < len(field):
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(field[i + 1], field[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def compare(out, readings_tsv, samples_tsv):
    with open(f"{out}/expected.json") as f:
        expected = json.load(f)
    problems = []
    seen = set()
    with open(readings_tsv, encoding="utf-8") as f:
        for line in f:
            fields = [unescape(x) for x in line.rstrip("\n").split("\t")]
            id_, row = fields[0], dict(zip(COLUMNS, fields[1:]))
            seen.add(id_)
            want = expected.get(id_)
            if want is None:
                problems.append(f"row {id_} was not sent")
                continue
            for col in COLUMNS:
                w, g = want[col], row[col]
                if col in ("f_double", "f_float"):
                    ok = g is not None and same_float(w, g, col == "f_float")
                else:
                    ok = w == g
                if not ok:
                    problems.append(f"id {id_} {col}: sent {w!r}, table has {g!r}")
    for id_ in expected:
        if id_ not in seen:
            problems.append(f"id {id_} is missing")
    children = {}
    with open(samples_tsv, encoding="utf-8") as f:
        for line in f:
            id_, n, channel, value, raw = [unescape(x) for x in line.rstrip("\n").split("\t")]
            children.setdefault(id_, []).append([n, channel, value, raw])
    for id_, want in expected.items():
        got = sorted(children.get(id_, []), key=lambda r: int(r[0]))
        if len(got) != len(want["samples"]) or any(
                g[0] != w[0] or g[1] != w[1] or g[3] != w[3] or not same_float(w[2], g[2], False)
                for g, w in zip(got, want["samples"])):
            problems.append(f"id {id_} samples: sent {want['samples']}, table has {got}")
    for p in problems[:20]:
        print(p)
    print(f"{len(expected)} messages compared, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(compare(sys.argv[2], sys.argv[3], sys.argv[4]))
