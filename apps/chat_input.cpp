#include "apps/chat_input.h"

#include <histedit.h>
#include <unistd.h>

#include <langinfo.h>

#include <atomic>
#include <cerrno>
#include <clocale>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>

namespace cs::cli {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
std::string g_prompt;  // what libedit's prompt callback shows

const char* prompt_fn(EditLine*) {
  return g_prompt.c_str();
}

// libedit's own reader retries a read interrupted by a signal once and then fails; this one
// returns at once when SIGINT arrived, so Ctrl-C works at the prompt. It decodes UTF-8 itself.
int getc_fn(EditLine*, wchar_t* out) {
  auto read_byte = [](unsigned char* b) -> int {
    for (;;) {
      const ssize_t n = ::read(STDIN_FILENO, b, 1);
      if (n == 1) return 1;
      if (n == 0) return 0;
      if (errno == EINTR) {
        if (g_interrupted) return -1;
        continue;
      }
      return -1;
    }
  };
  unsigned char b = 0;
  const int r = read_byte(&b);
  if (r <= 0) return r;
  int extra = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : 0;
  wchar_t c = extra == 3 ? (b & 0x07) : extra == 2 ? (b & 0x0F) : extra == 1 ? (b & 0x1F) : b;
  while (extra-- > 0) {
    unsigned char k = 0;
    const int rr = read_byte(&k);
    if (rr <= 0) return rr;
    c = (c << 6) | (k & 0x3F);
  }
  *out = c;
  return 1;
}

}  // namespace

struct LineInput::Impl {
  bool interactive = false;
  std::string history_file;
  EditLine* el = nullptr;
  History* hist = nullptr;
  HistEvent ev{};
};

LineInput::LineInput(bool interactive, std::string history_file) : impl_(std::make_unique<Impl>()) {
  impl_->interactive = interactive;
  impl_->history_file = std::move(history_file);
  if (!interactive) return;
  // libedit converts between wide and multibyte characters with the C library: it needs a UTF-8
  // locale to show and return anything beyond ASCII. Use the user's, else C.UTF-8.
  std::setlocale(LC_CTYPE, "");
  if (std::strcmp(nl_langinfo(CODESET), "UTF-8") != 0) std::setlocale(LC_CTYPE, "C.UTF-8");
  impl_->hist = history_init();
  history(impl_->hist, &impl_->ev, H_SETSIZE, 1000);
  history(impl_->hist, &impl_->ev, H_SETUNIQUE, 1);
  if (!impl_->history_file.empty())
    history(impl_->hist, &impl_->ev, H_LOAD, impl_->history_file.c_str());
  impl_->el = el_init("coldstream", stdin, stdout, stderr);
  el_set(impl_->el, EL_EDITOR, "emacs");
  el_set(impl_->el, EL_PROMPT, prompt_fn);
  el_set(impl_->el, EL_HIST, history, impl_->hist);
  el_set(impl_->el, EL_GETCFN, getc_fn);
  el_set(impl_->el, EL_SIGNAL, 0);
  // Ctrl-R searches the history, as in a shell.
  el_set(impl_->el, EL_BIND, "^R", "em-inc-search-prev", nullptr);
  el_source(impl_->el, nullptr);  // ~/.editrc, when there is one
}

LineInput::~LineInput() {
  if (impl_->el) el_end(impl_->el);
  if (impl_->hist) {
    if (!impl_->history_file.empty())
      history(impl_->hist, &impl_->ev, H_SAVE, impl_->history_file.c_str());
    history_end(impl_->hist);
  }
}

LineInput::Status LineInput::read(const std::string& prompt, std::string* line) {
  line->clear();
  if (!impl_->interactive) {
    if (!std::getline(std::cin, *line)) return Status::kEof;
    if (!line->empty() && line->back() == '\r') line->pop_back();
    return Status::kLine;
  }
  g_prompt = prompt;
  int count = 0;
  const char* s = el_gets(impl_->el, &count);
  if (g_interrupted) {
    const LineInfo* li = el_line(impl_->el);
    if (li && li->lastchar > li->buffer) line->assign(li->buffer, li->lastchar);
    // Start the next prompt on a fresh, empty line.
    el_reset(impl_->el);
    std::fputs("\n", stdout);
    return Status::kInterrupted;
  }
  if (!s || count <= 0) return Status::kEof;
  line->assign(s, size_t(count));
  while (!line->empty() && (line->back() == '\n' || line->back() == '\r')) line->pop_back();
  return Status::kLine;
}

void LineInput::remember(const std::string& entry) {
  if (impl_->hist && !entry.empty()) history(impl_->hist, &impl_->ev, H_ENTER, entry.c_str());
}

void LineInput::interrupt() {
  g_interrupted = 1;
}
void LineInput::clear_interrupt() {
  g_interrupted = 0;
}
bool LineInput::interrupted() {
  return g_interrupted != 0;
}

}  // namespace cs::cli
