// dlopt checkpoint files (docs/checkpoint-format.md): reader, writer, CRC-32.

#include "dlopt/checkpoint.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>

namespace dlopt {
namespace {

constexpr char kMagic[8] = {'D', 'L', 'O', 'P', 'T', 'C', 'K', 'P'};
constexpr std::size_t kPreludeSize = 64;
constexpr uint64_t kAlign = 64;
// Temporary files of a save in progress: `<dir>/.dlopt-tmp-<unique>`, renamed over the target when whole.
constexpr char kTmpPrefix[] = ".dlopt-tmp-";

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

// A failed system call: CheckpointIOError with errno (Python: the OSError of that errno).
[[noreturn]] void throw_sys(const std::string& what, const std::string& path, int code = errno) {
  throw CheckpointIOError(what + " '" + path + "': " + std::strerror(code), code, path);
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

std::string json_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') { out.push_back('\\'); out.push_back(char(c)); }
    else if (c < 0x20) { char buf[8]; std::snprintf(buf, sizeof buf, "\\u%04x", c); out += buf; }
    else out.push_back(char(c));
  }
  return out;
}

// Removes the temporary files that killed saves left in `dir`. A save holds an exclusive flock on its
// temporary file until it is renamed, and the kernel drops the lock when the process dies, so a
// temporary file whose lock can be taken belongs to no running save. Best effort: a directory that
// cannot be listed is the save's own error to report.
void remove_stale_temporaries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  const int dfd = ::dirfd(d);
  while (const dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, kTmpPrefix, sizeof kTmpPrefix - 1) != 0) continue;
    const int fd = ::openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat held, named;
    if (::fstat(fd, &held) == 0 && S_ISREG(held.st_mode) && ::flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        ::fstatat(dfd, e->d_name, &named, AT_SYMLINK_NOFOLLOW) == 0 && named.st_ino == held.st_ino &&
        named.st_dev == held.st_dev)
      ::unlinkat(dfd, e->d_name, 0);
    ::close(fd);
  }
  ::closedir(d);
}

// Creates the temporary file `tmp` (prefix + a unique suffix) and takes its flock. Created with mode
// 0666, so the umask applies as to any new file. If a concurrent remove_stale_temporaries took the
// file before the lock was ours, it is gone or going: start again under another name.
int create_temporary(const std::string& prefix, const std::string& path, std::string& tmp) {
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    const uint64_t now = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
    char suffix[64];
    std::snprintf(suffix, sizeof suffix, "%ld-%llx-%llx", long(::getpid()),
                  static_cast<unsigned long long>(counter++), static_cast<unsigned long long>(now));
    tmp = prefix + suffix;
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      throw_sys("cannot create a temporary file for", path);
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) return fd;  // no flock on this file system: no cleaner removes it
      ::close(fd);                          // a cleaner holds it and removes it
      continue;
    }
    struct stat held, named;
    if (::fstat(fd, &held) == 0 && ::stat(tmp.c_str(), &named) == 0 && named.st_ino == held.st_ino &&
        named.st_dev == held.st_dev)
      return fd;
    ::close(fd);
  }
  throw CheckpointError("cannot create a temporary file for '" + path + "'");
}

}  // namespace

std::size_t checkpoint_itemsize(const std::string& dtype) {
  if (dtype == "bfloat16") return 2;  // ml_dtypes.bfloat16 (NumPy's dtype.str says only "<V2")
  if (dtype.size() < 3 || (dtype[0] != '<' && dtype[0] != '|')) return 0;
  const std::string size = dtype.substr(2);
  auto is = [&](std::initializer_list<const char*> sizes) {
    for (const char* s : sizes)
      if (size == s) return std::size_t(std::stoul(size));
    return std::size_t(0);
  };
  switch (dtype[1]) {
    case 'b': return is({"1"});
    case 'i': case 'u': return is({"1", "2", "4", "8"});
    case 'f': return is({"2", "4", "8", "16"});
    case 'c': return is({"8", "16", "32"});
    default: return 0;
  }
}

uint32_t crc32(const void* data, std::size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const unsigned char* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

Checkpoint read_checkpoint(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) throw_sys("cannot open checkpoint", path);
  struct stat st;
  if (fstat(fileno(f.get()), &st) != 0) throw_sys("cannot stat", path);
  if (S_ISDIR(st.st_mode)) throw_sys("cannot read checkpoint", path, EISDIR);
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
    throw_sys("cannot read", path);
  if (get<uint32_t>(prelude + 56) != crc32(meta.data(), meta.size()))
    throw CheckpointError("corrupted checkpoint '" + path + "': header checksum mismatch");
  ckpt.header_json = meta.substr(std::size_t(table_size));

  const auto* tp = reinterpret_cast<const unsigned char*>(meta.data());
  Cursor c{tp, tp + table_size, path};
  const uint64_t count = c.read<uint64_t>();
  struct Entry { uint64_t offset, nbytes; uint32_t crc; };
  std::vector<Entry> entries;
  // Arrays lie in table order, each after the previous one; the bytes between them are padding.
  uint64_t end = data_offset;
  for (uint64_t i = 0; i < count; ++i) {
    CheckpointArray a;
    a.name = c.read_string(c.read<uint32_t>());
    a.dtype = c.read_string(c.read<uint8_t>());
    const uint8_t ndim = c.read<uint8_t>();
    uint64_t numel = 1;
    bool overflow = false;
    for (uint8_t d = 0; d < ndim; ++d) {
      const uint64_t dim = c.read<uint64_t>();
      overflow |= dim > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, dim, &numel);
      a.shape.push_back(int64_t(dim));
    }
    Entry e{c.read<uint64_t>(), c.read<uint64_t>(), c.read<uint32_t>()};
    const std::size_t item = checkpoint_itemsize(a.dtype);
    uint64_t nbytes = 0;
    if (overflow || numel > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, item, &nbytes))
      throw CheckpointError("corrupted checkpoint '" + path + "': the shape of array '" + a.name +
                            "' has more elements than 64 bits count");
    if (item == 0)
      throw CheckpointError("corrupted checkpoint '" + path + "': array '" + a.name + "' has dtype '" +
                            a.dtype + "', which is not a number or boolean type a checkpoint stores");
    if (e.nbytes != nbytes || e.offset < end || e.offset % kAlign != 0 || e.offset > file_size ||
        e.nbytes > file_size - e.offset)
      throw CheckpointError("corrupted checkpoint '" + path + "': bad table entry for '" + a.name + "'");
    end = e.offset + e.nbytes;
    ckpt.arrays.push_back(std::move(a));
    entries.push_back(e);
  }
  if (c.p != c.end)
    throw CheckpointError("corrupted checkpoint '" + path + "': bytes after the array table");

  // Read the rest in file order: every byte is either in a checksummed array or padding, which must
  // be zero, so no byte of the file goes unchecked.
  uint64_t pos = kPreludeSize + meta.size();
  auto read_padding = [&](uint64_t to) {
    unsigned char buf[4096];
    while (pos < to) {
      const std::size_t n = std::size_t(std::min<uint64_t>(sizeof buf, to - pos));
      if (std::fread(buf, 1, n, f.get()) != n) throw_sys("cannot read", path);
      for (std::size_t k = 0; k < n; ++k)
        if (buf[k] != 0)
          throw CheckpointError("corrupted checkpoint '" + path + "': nonzero padding byte at offset " +
                                std::to_string(pos + k));
      pos += n;
    }
  };
  read_padding(data_offset);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    CheckpointArray& a = ckpt.arrays[i];
    read_padding(entries[i].offset);
    a.data.resize(std::size_t(entries[i].nbytes));
    if (std::fread(a.data.data(), 1, a.data.size(), f.get()) != a.data.size())
      throw_sys("cannot read", path);
    pos += entries[i].nbytes;
    if (crc32(a.data.data(), a.data.size()) != entries[i].crc)
      throw CheckpointError("corrupted checkpoint '" + path + "': checksum mismatch in array '" +
                            a.name + "'");
  }
  read_padding(file_size);
  return ckpt;
}

void write_checkpoint(const std::string& path, const std::vector<CheckpointArrayRef>& params) {
  std::string header = "{\"format\": \"dlopt-checkpoint\", \"version\": 1, "
                       "\"writer\": \"dlopt C++\", \"contents\": {\"params\": {";
  std::vector<CheckpointArrayRef> arrays;
  for (std::size_t i = 0; i < params.size(); ++i) {
    CheckpointArrayRef a = params[i];
    a.name = "params/" + a.name;
    header += (i ? ", \"" : "\"") + json_escape(params[i].name) + "\": {\"__array__\": \"" +
              json_escape(a.name) + "\"}";
    arrays.push_back(std::move(a));
  }
  header += "}}}";
  write_checkpoint(path, header, arrays);
}

void write_checkpoint(const std::string& path, const std::string& header,
                      const std::vector<CheckpointArrayRef>& arrays,
                      const std::function<void(int)>& sync_file) {
  // Check every array, then build the table.
  std::string table;
  put<uint64_t>(table, arrays.size());
  std::vector<std::size_t> offset_pos;
  std::vector<std::string> names;
  for (const CheckpointArrayRef& a : arrays) {
    const std::size_t item = checkpoint_itemsize(a.dtype);
    if (item == 0)
      throw CheckpointError("cannot write array '" + a.name + "': dtype '" + a.dtype +
                            "' is not one a checkpoint stores (booleans and numbers only)");
    if (a.shape.size() > 255 || a.name.size() > UINT32_MAX)
      throw CheckpointError("cannot write array '" + a.name + "': too many dimensions");
    uint64_t n = 1;
    for (int64_t d : a.shape) n *= uint64_t(d);
    if (a.nbytes != n * item)
      throw CheckpointError("cannot write array '" + a.name + "': " + std::to_string(a.nbytes) +
                            " bytes for " + std::to_string(n) + " elements of " + a.dtype);
    names.push_back(a.name);
    put<uint32_t>(table, uint32_t(a.name.size()));
    table += a.name;
    put<uint8_t>(table, uint8_t(a.dtype.size()));
    table += a.dtype;
    put<uint8_t>(table, uint8_t(a.shape.size()));
    for (int64_t d : a.shape) put<uint64_t>(table, uint64_t(d));
    offset_pos.push_back(table.size());
    put<uint64_t>(table, 0);  // offset, filled in below
    put<uint64_t>(table, a.nbytes);
    put<uint32_t>(table, crc32(a.data, a.nbytes));
  }
  std::sort(names.begin(), names.end());
  for (std::size_t i = 1; i < names.size(); ++i)
    if (names[i] == names[i - 1]) throw CheckpointError("cannot write array '" + names[i] + "' twice");
  const uint64_t data_offset = align_up(kPreludeSize + table.size() + header.size());
  uint64_t end = data_offset;
  std::vector<uint64_t> offsets;
  for (std::size_t i = 0; i < arrays.size(); ++i) {
    end = align_up(end);
    offsets.push_back(end);
    put_at<uint64_t>(table, offset_pos[i], end);
    end += arrays[i].nbytes;
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
  remove_stale_temporaries(dir);
  std::string tmp;
  const int fd =
      create_temporary((slash == std::string::npos ? std::string() : dir) + kTmpPrefix, path, tmp);
  bool open = true;
  try {
    auto write_all = [&](const void* p, std::size_t n) {
      const char* b = static_cast<const char*>(p);
      while (n > 0) {
        const ssize_t w = ::write(fd, b, n);
        if (w < 0) {
          if (errno == EINTR) continue;
          throw_sys("cannot write", path);
        }
        b += w;
        n -= std::size_t(w);
      }
    };
    // A replaced file keeps its permission mode; a new one has the umask's (create_temporary).
    struct stat previous;
    if (::stat(path.c_str(), &previous) == 0 && S_ISREG(previous.st_mode) &&
        ::fchmod(fd, previous.st_mode & 0777) != 0)
      throw_sys("cannot set the permission mode of the temporary file for", path);
    const std::string zeros(kAlign, '\0');
    write_all(prelude.data(), prelude.size());
    write_all(meta.data(), meta.size());
    uint64_t pos = kPreludeSize + meta.size();
    for (std::size_t i = 0; i < arrays.size(); ++i) {
      write_all(zeros.data(), std::size_t(offsets[i] - pos));
      write_all(arrays[i].data, arrays[i].nbytes);
      pos = offsets[i] + arrays[i].nbytes;
    }
    if (pos < data_offset) write_all(zeros.data(), std::size_t(data_offset - pos));
    if (sync_file) sync_file(fd);
    else if (::fsync(fd) != 0) throw_sys("cannot fsync", path);
    // Renamed while still open, so its lock keeps remove_stale_temporaries away until then.
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw_sys("cannot rename the temporary file onto", path);
    open = false;
    if (::close(fd) != 0) throw_sys("cannot close", path);
  } catch (...) {
    if (open) {
      ::unlink(tmp.c_str());
      ::close(fd);
    }
    throw;
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY);
  if (dfd >= 0) {
    ::fsync(dfd);  // best effort: some file systems refuse fsync on directories
    ::close(dfd);
  }
}

}  // namespace dlopt
