#include "dms/sender.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "dms/auth.hpp"
#include "dms/cache.hpp"
#include "dms/errors.hpp"
#include "dms/io.hpp"
#include "dms/mapped.hpp"
#include "dms/protocol.hpp"

namespace dms {

namespace {

// Opening a file costs about as much as moving this many bytes (as in UnitCopier).
constexpr uint64_t kPerPieceCost = 64 * 1024;
// Replied pieces whose descriptors are kept to drop them once more (drop_replied); a unit
// of many large files closes the oldest beyond this, so it never nears RLIMIT_NOFILE.
constexpr size_t kKeptForDrop = 64;

void validate(const std::vector<CopySpec>& specs) {
  validate_specs(specs);
  for (const CopySpec& s : specs)
    if (s.dst.empty() || s.dst.size() > wire::kMaxPath) throw std::invalid_argument("bad destination path: " + s.dst);
}

PieceOutcome failure_from(const std::exception_ptr& ep, size_t index, const std::string& src) {
  PieceOutcome out;
  out.index = index;
  piece_failure(out, ep, src);
  return out;
}

}  // namespace

UnitSender::UnitSender(std::vector<CopySpec> specs, TcpTarget target, std::string secret, SendMethod method,
                       size_t buffer_size, size_t window)
    : specs_(std::move(specs)),
      target_(std::move(target)),
      secret_(std::move(secret)),
      method_(method),
      buffer_(make_io_buffer(buffer_size)),
      window_(std::max<size_t>(window, 1)) {
  validate(specs_);
  readahead_ = ReadAhead(source_ranges(specs_), kReadAheadFiles, kReadAheadBytes, /*note_uncached=*/true);
  if (target_.port == 0) throw std::invalid_argument("the receiver port must be 1..65535");
}

UnitSender::UnitSender(std::vector<CopySpec> specs, std::unique_ptr<NetworkTransport> transport, std::string secret,
                       SendMethod method, size_t buffer_size, size_t window)
    : specs_(std::move(specs)),
      secret_(std::move(secret)),
      method_(method),
      buffer_(make_io_buffer(buffer_size)),
      window_(std::max<size_t>(window, 1)),
      transport_(std::move(transport)) {
  validate(specs_);
  readahead_ = ReadAhead(source_ranges(specs_), kReadAheadFiles, kReadAheadBytes, /*note_uncached=*/true);
  if (!transport_) throw std::invalid_argument("a transport is required");
}

void authenticate_client(NetworkTransport& t, const std::string& secret) {
  uint8_t hello[wire::kHelloSize];
  t.read_exact(hello, wire::kMagicSize);
  if (wire::has_magic(hello, wire::kMagicSize, wire::kReplyMagic)) {  // refused before the handshake (busy)
    uint8_t fixed[wire::kReplyFixedSize];
    std::copy(hello, hello + wire::kMagicSize, fixed);
    t.read_exact(fixed + wire::kMagicSize, sizeof fixed - wire::kMagicSize);
    size_t len = 0;
    wire::Reply rep = wire::decode_reply_fixed(fixed, sizeof fixed, len);
    throw_errno(rep.status == wire::Status::Busy ? EAGAIN : ECONNREFUSED, "handshake", t.peer());
  }
  t.read_exact(hello + wire::kMagicSize, sizeof hello - wire::kMagicSize);
  wire::Hello h = wire::decode_hello(hello, sizeof hello);
  wire::Auth a;
  a.nonce = fresh_nonce();
  a.mac = wire::client_proof(secret, h.nonce, a.nonce);
  auto frame = wire::encode_auth(a);
  t.write_all(frame.data(), frame.size());
  uint8_t answer[wire::kReplyFixedSize];
  t.read_exact(answer, wire::kMagicSize);
  if (wire::has_magic(answer, wire::kMagicSize, wire::kReplyMagic)) {
    t.read_exact(answer + wire::kMagicSize, wire::kReplyFixedSize - wire::kMagicSize);
    size_t len = 0;
    wire::Reply rep = wire::decode_reply_fixed(answer, sizeof answer, len);
    throw AuthError("receiver " + t.peer() + " refused the handshake: " + wire::status_name(rep.status) +
                    " (is the data-plane secret the same on both sides?)");
  }
  t.read_exact(answer + wire::kMagicSize, wire::kAuthOkSize - wire::kMagicSize);
  Mac proof = wire::decode_auth_ok(answer, wire::kAuthOkSize);
  if (!macs_equal(proof, wire::server_proof(secret, h.nonce, a.nonce)))
    throw AuthError("receiver " + t.peer() + " could not prove it knows the data-plane secret");
}

void UnitSender::connect_and_authenticate() {
  if (!transport_) {
    auto tcp = std::make_unique<TcpTransport>(
        TcpTransport::connect(target_.bind_address, target_.host, target_.port, target_.timeout_ms));
    local_address_ = tcp->local_address();
    transport_ = std::move(tcp);
  }
  authenticate_client(*transport_, secret_);
  authenticated_ = true;
}

std::vector<bool> query_up_to_date(const TcpTarget& target, const std::string& secret,
                                   const std::vector<wire::QueryEntry>& entries, bool checksum) {
  std::vector<bool> out;
  out.reserve(entries.size());
  TcpTransport t = TcpTransport::connect(target.bind_address, target.host, target.port, target.timeout_ms);
  authenticate_client(t, secret);
  for (size_t start = 0; start < entries.size(); start += wire::kMaxQueryEntries) {
    std::vector<wire::QueryEntry> batch(entries.begin() + static_cast<ptrdiff_t>(start),
                                        entries.begin() + static_cast<ptrdiff_t>(std::min(entries.size(), start + wire::kMaxQueryEntries)));
    auto frame = wire::encode_query(checksum ? wire::kQueryChecksum : 0, batch);
    t.write_all(frame.data(), frame.size());
    uint8_t head[8];
    t.read_exact(head, wire::kMagicSize);
    if (!wire::has_magic(head, wire::kMagicSize, wire::kAnswerMagic))
      throw ProtocolError("receiver " + t.peer() + " did not answer the query");
    t.read_exact(head + wire::kMagicSize, 4);
    uint32_t count = (uint32_t{head[4]} << 24) | (uint32_t{head[5]} << 16) | (uint32_t{head[6]} << 8) | head[7];
    if (count != batch.size()) throw ProtocolError("receiver " + t.peer() + " answered for another number of files");
    std::vector<uint8_t> bits((count + 7) / 8);
    if (!bits.empty()) t.read_exact(bits.data(), bits.size());
    for (uint32_t i = 0; i < count; ++i) out.push_back((bits[i / 8] >> (i % 8)) & 1u);
  }
  return out;
}

bool UnitSender::begin_piece(PieceOutcome& out) {
  const CopySpec& s = specs_[next_];
  try {
    src_ = readahead_.open(next_, O_RDONLY | O_NOFOLLOW);
    if (s.check_source) check_source_unchanged(s, src_, "since planning");
  } catch (...) {
    src_.close_no_throw();
    out = failure_from(std::current_exception(), next_, s.src);
    return false;
  }
  wire::PutHeader h;
  h.flags = s.sparse ? wire::kPutSparse : 0;
  h.seq = ++seq_;
  h.file_size = s.file_size;
  h.offset = s.offset;
  h.length = s.length;
  h.path = s.dst;
  auto frame = wire::encode_put(h);
  transport_->write_all(frame.data(), frame.size());
  hasher_.reset();
  cursor_ = 0;
  open_ = true;
  return true;
}

void UnitSender::send_payload_block(uint64_t offset, size_t n) {
  if (method_ == SendMethod::Sendfile && corrupt_every_ == 0) {
    transport_->send_file(src_.fd(), offset, n, buffer_);
    return;
  }
  if (corrupt_every_ != 0) {
    for (size_t i = 0; i < n; ++i)
      if (++corrupt_counter_ % corrupt_every_ == 0) buffer_[i] ^= 0x5a;
  }
  transport_->write_all(buffer_.data(), n);
}

// Sends up to `budget` payload bytes of the current piece. A source failure
// mid-piece cannot take back what was already sent, so the rest of the frame
// is padded with zeros and closed with a digest that cannot match: the
// receiver rejects the piece and the stream stays in step.
bool UnitSender::advance(uint64_t budget, uint64_t& used) {
  const CopySpec& s = specs_[next_];
  while (cursor_ < s.length) {
    if (budget == 0) return false;
    uint64_t off = s.offset + cursor_;
    // sendfile() moves page-cache pages without copying them; hash them in place too,
    // through a mapping, rather than pread them into the buffer only to hash them.
    bool in_place = method_ == SendMethod::Sendfile && corrupt_every_ == 0 && s.length - cursor_ >= kMapMinBytes;
    size_t block = in_place ? kMapWindowBytes : buffer_.size();
    size_t want = static_cast<size_t>(std::min<uint64_t>({block, s.length - cursor_, budget}));
    try {
      if (in_place) {
        if (!hash_file_range(src_, off, want, hasher_, buffer_))
          throw SourceChangedError(s.src + ": shorter than the " + std::to_string(s.file_size) +
                                   " bytes the planner saw");
      } else {
        size_t got = pread_full(src_, buffer_.data(), want, static_cast<off_t>(off));
        if (got < want)
          throw SourceChangedError(s.src + ": ended at byte " + std::to_string(off + got) + ", the planner saw " +
                                   std::to_string(s.file_size) + " bytes");
        hasher_.update(buffer_.data(), want);
      }
    } catch (...) {  // a source failure (failure_from rethrows anything else)
      poison_rest(failure_from(std::current_exception(), next_, s.src));
      return true;
    }
    send_payload_block(off, want);
    // Pages this transfer brought into the cache serve nobody once sent (dms/cache.hpp).
    // Those still in a socket buffer stay: they are dropped when the piece's reply comes.
    if (readahead_.was_uncached(next_)) drop_cached(src_, off, want);
    cursor_ += want;
    used += want;
    budget -= want;
    bytes_moved_ += want;
  }
  PieceOutcome local;
  if (s.check_source) {
    try {
      check_source_unchanged(s, src_, "while being sent");
    } catch (const SourceChangedError&) {
      end_piece(true, failure_from(std::current_exception(), next_, s.src));
      return true;
    }
  }
  end_piece(false, std::move(local));
  return true;
}

void UnitSender::poison_rest(PieceOutcome local) {
  const CopySpec& s = specs_[next_];
  std::fill(buffer_.begin(), buffer_.end(), 0);
  while (cursor_ < s.length) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buffer_.size(), s.length - cursor_));
    transport_->write_all(buffer_.data(), n);
    cursor_ += n;
  }
  end_piece(true, std::move(local));
}

void UnitSender::end_piece(bool poisoned, PieceOutcome local) {
  Digest d = hasher_.digest();
  Digest on_wire = d;
  if (poisoned) on_wire.low ^= 1;  // guaranteed mismatch: the receiver never accepts this piece
  auto trailer = wire::encode_trailer(on_wire);
  transport_->write_all(trailer.data(), trailer.size());
  File keep;
  if (readahead_.was_uncached(next_)) keep = std::move(src_);  // dropped at the reply (collect)
  src_.close_no_throw();
  open_ = false;
  local.index = next_;
  pending_.push_back(Pending{next_, seq_, d, poisoned, std::move(local), std::move(keep)});
}

// Once more for every piece dropped at its reply, when the unit ends and when the sender
// goes: the receiving socket frees what it has read a little later (on the CPU that
// received it: skb_attempt_defer_free), and pages it still held stayed cached.
void UnitSender::drop_replied() noexcept {
  for (auto& [index, file] : replied_) drop_piece(file, index);
}

void UnitSender::drop_piece(const File& f, size_t index) const noexcept {
  drop_cached(f, specs_[index].offset, specs_[index].length);
}

UnitSender::~UnitSender() { drop_replied(); }  // and once more, a moment later

void UnitSender::collect(std::vector<PieceOutcome>& outs, size_t keep_at_most, bool block) {
  while (!pending_.empty() && (pending_.size() > keep_at_most || (!block && transport_->readable(0)))) {
    uint8_t fixed[wire::kReplyFixedSize];
    transport_->read_exact(fixed, sizeof fixed);
    size_t len = 0;
    wire::Reply rep = wire::decode_reply_fixed(fixed, sizeof fixed, len);
    rep.message.resize(len);
    if (len) transport_->read_exact(rep.message.data(), len);
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    if (p.source) {  // the receiver has read every byte: the sockets let go of the piece's pages
      drop_piece(p.source, p.index);
      replied_.emplace_back(p.index, std::move(p.source));
      if (replied_.size() > kKeptForDrop) {  // a bounded number of descriptors: the oldest goes now
        drop_piece(replied_.front().second, replied_.front().first);
        replied_.pop_front();
      }
    }
    if (rep.seq != p.seq)
      throw ProtocolError("receiver " + transport_->peer() + " answered piece " + std::to_string(rep.seq) +
                          ", expected " + std::to_string(p.seq));
    const CopySpec& s = specs_[p.index];
    if (rep.status == wire::Status::BadFrame || rep.status == wire::Status::AuthFailed ||
        rep.status == wire::Status::Busy)
      throw ProtocolError("receiver " + transport_->peer() + " ended the connection: " + wire::status_name(rep.status) +
                          (rep.message.empty() ? "" : ": " + rep.message));
    if (p.poisoned) {
      outs.push_back(std::move(p.local));
      continue;
    }
    PieceOutcome out;
    out.index = p.index;
    out.digest = rep.digest;
    out.path = s.dst;
    switch (rep.status) {
      case wire::Status::Ok:
        if (!(rep.digest == p.sent)) {
          out.status = PieceStatus::Mismatch;
          out.message = s.dst + ": the receiver stored bytes hashing to " + rep.digest.hex() + ", sent " + p.sent.hex();
        }
        break;
      case wire::Status::PathRefused:
        out.status = PieceStatus::Refused;
        out.message = "receiver " + transport_->peer() + " refused " + s.dst + ": " + rep.message;
        break;
      case wire::Status::IoError:
        out.status = PieceStatus::OsError;
        out.err = static_cast<int>(rep.err);
        out.call = "receiver";
        out.message = "receiver " + transport_->peer() + ": " + rep.message;
        break;
      case wire::Status::ChecksumMismatch:
        out.status = PieceStatus::Mismatch;
        out.message = s.dst + ": corrupted in flight (the receiver got bytes hashing to " + rep.digest.hex() +
                      ", sent " + p.sent.hex() + ")";
        break;
      default:
        break;
    }
    outs.push_back(std::move(out));
  }
}

std::vector<PieceOutcome> UnitSender::step(uint64_t max_bytes) {
  std::vector<PieceOutcome> outs;
  if (!authenticated_) connect_and_authenticate();
  uint64_t used = 0;
  max_bytes = std::max<uint64_t>(max_bytes, 1);
  auto started = std::chrono::steady_clock::now();
  while (next_ < specs_.size() && used < max_bytes) {
    if (!open_ && held_up_since(started, used)) break;
    if (!open_) {
      PieceOutcome out;
      out.index = next_;
      used += kPerPieceCost;
      if (!begin_piece(out)) {
        outs.push_back(std::move(out));
        ++next_;
        continue;
      }
    }
    if (!advance(max_bytes > used ? max_bytes - used : 0, used)) break;
    ++next_;
    collect(outs, window_, false);
  }
  if (next_ >= specs_.size()) {
    collect(outs, 0, true);
    drop_replied();
  }
  return outs;
}

}  // namespace dms
