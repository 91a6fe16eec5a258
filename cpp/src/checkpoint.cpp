// dlopt checkpoint files (docs/checkpoint-format.md): reader, writer, CRC-32.

#include "dlopt/checkpoint.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace dlopt {
namespace {

constexpr char kMagic[8] = {'D', 'L', 'O', 'P', 'T', 'C', 'K', 'P'};
constexpr std::size_t kPreludeSize = 64;
constexpr uint64_t kAlign = 64;

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}

uint64_t align_up(uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Little-endian field access (the format is little-endian on every machine).
template <class T>
T get(const unsigned char* p) {
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= T(p[i]) << (8 * i);
  return v;
}
template <class T>
void put(std::string& out, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(char((uint64_t(v) >> (8 * i)) & 0xFF));
}
template <class T>
void put_at(std::string& out, std::size_t pos, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) out[pos + i] = char((uint64_t(v) >> (8 * i)) & 0xFF);
}

struct FileCloser {
  void operator()(std::FILE* f) const { if (f) std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

std::string sys_error(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

// Bounds-checked cursor over the table.
struct Cursor {
  const unsigned char* p;
  const unsigned char* end;
  const std::string& path;
  void need(std::size_t n) const {
    if (std::size_t(end - p) < n)
      throw CheckpointError("corrupted checkpoint '" + path + "': array table is cut short");
  }
  template <class T>
  T read() {
    need(sizeof(T));
    T v = get<T>(p);
    p += sizeof(T);
    return v;
  }
  std::string read_string(std::size_t n) {
    need(n);
    std::string s(reinterpret_cast<const char*>(p), n);
    p += n;
    return s;
  }
};

std::size_t itemsize_of(const std::string& dtype) {
  if (dtype == "bfloat16") return 2;  // ml_dtypes.bfloat16 (NumPy's dtype.str says only "<V2")
  if (dtype.size() < 3) return 0;
  try {
    return std::size_t(std::stoul(dtype.substr(2)));
  } catch (...) {
    return 0;
  }
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') { out.push_back('\\'); out.push_back(char(c)); }
    else if (c < 0x20) { char buf[8]; std::snprintf(buf, sizeof buf, "\\u%04x", c); out += buf; }
    else out.push_back(char(c));
  }
  return out;
}

}  // namespace

uint32_t crc32(const void* data, std::size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const unsigned char* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

Checkpoint read_checkpoint(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) throw CheckpointError(sys_error("cannot open checkpoint", path));
  struct stat st;
  if (fstat(fileno(f.get()), &st) != 0) throw CheckpointError(sys_error("cannot stat", path));
  const uint64_t actual_size = uint64_t(st.st_size);

  unsigned char prelude[kPreludeSize];
  if (actual_size < kPreludeSize || std::fread(prelude, 1, kPreludeSize, f.get()) != kPreludeSize)
    throw CheckpointError("truncated checkpoint '" + path + "': " + std::to_string(actual_size) +
                          " bytes, shorter than the 64-byte prelude");
  if (std::memcmp(prelude, kMagic, 8) != 0)
    throw CheckpointError("'" + path + "' is not a dlopt checkpoint (bad magic bytes)");
  if (get<uint32_t>(prelude + 60) != crc32(prelude, 60))
    throw CheckpointError("corrupted checkpoint '" + path + "': prelude checksum mismatch");
  Checkpoint ckpt;
  ckpt.version = get<uint32_t>(prelude + 8);
  if (ckpt.version != kCheckpointVersion)
    throw CheckpointError("checkpoint '" + path + "' has format version " +
                          std::to_string(ckpt.version) + "; this dlopt reads version " +
                          std::to_string(kCheckpointVersion));
  const uint64_t table_offset = get<uint64_t>(prelude + 16), table_size = get<uint64_t>(prelude + 24);
  const uint64_t header_size = get<uint64_t>(prelude + 32), data_offset = get<uint64_t>(prelude + 40);
  const uint64_t file_size = get<uint64_t>(prelude + 48);
  if (actual_size != file_size)
    throw CheckpointError((actual_size < file_size ? "truncated checkpoint '" : "corrupted checkpoint '") +
                          path + "': " + std::to_string(actual_size) + " bytes, expected " +
                          std::to_string(file_size));
  if (table_offset != kPreludeSize || table_size > file_size || header_size > file_size ||
      table_offset + table_size + header_size > data_offset || data_offset > file_size)
    throw CheckpointError("corrupted checkpoint '" + path + "': inconsistent section sizes");

  std::string meta(std::size_t(table_size + header_size), '\0');
  if (std::fread(meta.data(), 1, meta.size(), f.get()) != meta.size())
    throw CheckpointError(sys_error("cannot read", path));
  if (get<uint32_t>(prelude + 56) != crc32(meta.data(), meta.size()))
    throw CheckpointError("corrupted checkpoint '" + path + "': header checksum mismatch");
  ckpt.header_json = meta.substr(std::size_t(table_size));

  const auto* tp = reinterpret_cast<const unsigned char*>(meta.data());
  Cursor c{tp, tp + table_size, path};
  const uint64_t count = c.read<uint64_t>();
  struct Entry { uint64_t offset, nbytes; uint32_t crc; };
  std::vector<Entry> entries;
  for (uint64_t i = 0; i < count; ++i) {
    CheckpointArray a;
    a.name = c.read_string(c.read<uint32_t>());
    a.dtype = c.read_string(c.read<uint8_t>());
    const uint8_t ndim = c.read<uint8_t>();
    for (uint8_t d = 0; d < ndim; ++d) a.shape.push_back(int64_t(c.read<uint64_t>()));
    Entry e{c.read<uint64_t>(), c.read<uint64_t>(), c.read<uint32_t>()};
    const std::size_t item = itemsize_of(a.dtype);
    if (item == 0 || e.nbytes != uint64_t(a.numel()) * item || e.offset < data_offset ||
        e.offset > file_size || e.nbytes > file_size - e.offset)
      throw CheckpointError("corrupted checkpoint '" + path + "': bad table entry for '" + a.name + "'");
    ckpt.arrays.push_back(std::move(a));
    entries.push_back(e);
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    CheckpointArray& a = ckpt.arrays[i];
    a.data.resize(std::size_t(entries[i].nbytes));
    if (entries[i].nbytes > 0) {
      if (std::fseek(f.get(), long(entries[i].offset), SEEK_SET) != 0 ||
          std::fread(a.data.data(), 1, a.data.size(), f.get()) != a.data.size())
        throw CheckpointError(sys_error("cannot read", path));
    }
    if (crc32(a.data.data(), a.data.size()) != entries[i].crc)
      throw CheckpointError("corrupted checkpoint '" + path + "': checksum mismatch in array '" +
                            a.name + "'");
  }
  return ckpt;
}

void write_checkpoint(const std::string& path, const std::vector<CheckpointArrayRef>& params) {
  // Table and JSON header.
  std::string table, header = "{\"format\": \"dlopt-checkpoint\", \"version\": 1, "
                              "\"writer\": \"dlopt C++\", \"contents\": {\"params\": {";
  put<uint64_t>(table, params.size());
  std::vector<std::size_t> offset_pos;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const CheckpointArrayRef& a = params[i];
    const std::string name = "params/" + a.name;
    if (a.dtype.size() > 255 || a.shape.size() > 255) throw CheckpointError("bad array '" + a.name + "'");
    put<uint32_t>(table, uint32_t(name.size()));
    table += name;
    put<uint8_t>(table, uint8_t(a.dtype.size()));
    table += a.dtype;
    put<uint8_t>(table, uint8_t(a.shape.size()));
    for (int64_t d : a.shape) put<uint64_t>(table, uint64_t(d));
    offset_pos.push_back(table.size());
    put<uint64_t>(table, 0);  // offset, filled in below
    put<uint64_t>(table, a.nbytes);
    put<uint32_t>(table, crc32(a.data, a.nbytes));
    header += (i ? ", \"" : "\"") + json_escape(a.name) + "\": {\"__array__\": \"" +
              json_escape(name) + "\"}";
  }
  header += "}}}";
  const uint64_t data_offset = align_up(kPreludeSize + table.size() + header.size());
  uint64_t end = data_offset;
  std::vector<uint64_t> offsets;
  for (std::size_t i = 0; i < params.size(); ++i) {
    end = align_up(end);
    offsets.push_back(end);
    put_at<uint64_t>(table, offset_pos[i], end);
    end += params[i].nbytes;
  }
  std::string prelude(kMagic, 8);
  put<uint32_t>(prelude, kCheckpointVersion);
  put<uint32_t>(prelude, 0);
  put<uint64_t>(prelude, kPreludeSize);
  put<uint64_t>(prelude, table.size());
  put<uint64_t>(prelude, header.size());
  put<uint64_t>(prelude, data_offset);
  put<uint64_t>(prelude, end);
  const std::string meta = table + header;
  put<uint32_t>(prelude, crc32(meta.data(), meta.size()));
  put<uint32_t>(prelude, crc32(prelude.data(), 60));

  // Atomic write: temporary file in the same directory, fsync, rename, fsync the directory.
  const std::size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  std::string tmp = (slash == std::string::npos ? std::string() : dir) + ".dlopt-tmp-XXXXXX";
  const int fd = mkstemp(tmp.data());
  if (fd < 0) throw CheckpointError(sys_error("cannot create a temporary file for", path));
  ::fchmod(fd, 0644);  // mkstemp creates 0600; a checkpoint is an ordinary file
  auto fail = [&](const std::string& what) {
    const std::string msg = sys_error(what, path);
    ::close(fd);
    ::unlink(tmp.c_str());
    throw CheckpointError(msg);
  };
  auto write_all = [&](const void* p, std::size_t n) {
    const char* b = static_cast<const char*>(p);
    while (n > 0) {
      const ssize_t w = ::write(fd, b, n);
      if (w < 0) { if (errno == EINTR) continue; fail("cannot write"); }
      b += w;
      n -= std::size_t(w);
    }
  };
  const std::string zeros(kAlign, '\0');
  write_all(prelude.data(), prelude.size());
  write_all(meta.data(), meta.size());
  uint64_t pos = kPreludeSize + meta.size();
  for (std::size_t i = 0; i < params.size(); ++i) {
    write_all(zeros.data(), std::size_t(offsets[i] - pos));
    write_all(params[i].data, params[i].nbytes);
    pos = offsets[i] + params[i].nbytes;
  }
  if (pos < data_offset) write_all(zeros.data(), std::size_t(data_offset - pos));
  if (::fsync(fd) != 0) fail("cannot fsync");
  if (::close(fd) != 0) { ::unlink(tmp.c_str()); throw CheckpointError(sys_error("cannot close", path)); }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string msg = sys_error("cannot rename the temporary file onto", path);
    ::unlink(tmp.c_str());
    throw CheckpointError(msg);
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY);
  if (dfd >= 0) {
    ::fsync(dfd);  // best effort: some file systems refuse fsync on directories
    ::close(dfd);
  }
}

}  // namespace dlopt
