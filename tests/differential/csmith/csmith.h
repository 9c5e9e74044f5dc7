/* A freestanding stand-in for csmith's runtime header (csmith.h,
 * platform_generic.h, safe_math.h), which the Debian csmith package does not
 * ship. The differential tester never compares what a program computes, only
 * the bytes two linkers write, so the safe-math wrappers below only have to be
 * free of undefined behaviour, not equal to csmith's. No libc: the checksum
 * goes to csmith_report(), which another module defines. */
#ifndef THINFARM_CSMITH_H
#define THINFARM_CSMITH_H
#include <stdint.h>
#include <stddef.h>

void csmith_report(uint32_t checksum, int flag);

static uint32_t crc32_tab[256];
static uint32_t crc32_context = 0xFFFFFFFFUL;

static void crc32_gentab(void) {
  const uint32_t poly = 0xEDB88320UL;
  for (int i = 0; i < 256; i++) {
    uint32_t crc = (uint32_t)i;
    for (int j = 8; j > 0; j--)
      crc = (crc & 1) ? (crc >> 1) ^ poly : crc >> 1;
    crc32_tab[i] = crc;
  }
}
static void crc32_byte(uint8_t b) {
  crc32_context = ((crc32_context >> 8) & 0x00FFFFFF) ^ crc32_tab[(crc32_context ^ b) & 0xFF];
}
static void crc32_8bytes(uint64_t val) {
  for (int i = 0; i < 8; i++)
    crc32_byte((uint8_t)(val >> (8 * i)));
}
static void transparent_crc(uint64_t val, char *vname, int flag) {
  (void)vname;
  (void)flag;
  crc32_8bytes(val);
}
static void transparent_crc_bytes(char *ptr, int nbytes, char *vname, int flag) {
  (void)vname;
  (void)flag;
  for (int i = 0; i < nbytes; i++)
    crc32_byte((uint8_t)ptr[i]);
}
#define printf(...) ((void)0)
#define platform_main_begin() /* nothing */
#define platform_main_end(x, flag) csmith_report((uint32_t)(x), (flag))

/* Safe math: wrap-around in the unsigned type, shifts masked, division by zero
 * and INT_MIN / -1 answered with the left operand. */
#define TF_UNARY(T, UT, K)                                                                 \
  static inline T safe_unary_minus_func_##T##_##K(T a) { return (T)(UT)(0 - (UT)a); }
#define TF_ARITH(T, UT, K)                                                                 \
  static inline T safe_add_func_##T##_##K##_##K(T a, T b) { return (T)(UT)((UT)a + (UT)b); } \
  static inline T safe_sub_func_##T##_##K##_##K(T a, T b) { return (T)(UT)((UT)a - (UT)b); } \
  static inline T safe_mul_func_##T##_##K##_##K(T a, T b) {                                \
    return (T)(UT)((uint64_t)(UT)a * (uint64_t)(UT)b);                                     \
  }                                                                                        \
  static inline T safe_div_func_##T##_##K##_##K(T a, T b) {                                \
    if (b == 0 || (b == (T)-1 && (T)-1 < 0 && a == (T)((UT)1 << (sizeof(T) * 8 - 1))))     \
      return a;                                                                            \
    return (T)(a / b);                                                                     \
  }                                                                                        \
  static inline T safe_mod_func_##T##_##K##_##K(T a, T b) {                                \
    if (b == 0 || (b == (T)-1 && (T)-1 < 0))                                               \
      return a;                                                                            \
    return (T)(a % b);                                                                     \
  }                                                                                        \
  static inline T safe_lshift_func_##T##_##K##_s(T a, int b) {                             \
    return (T)(UT)((UT)a << ((unsigned)b % (sizeof(T) * 8)));                              \
  }                                                                                        \
  static inline T safe_lshift_func_##T##_##K##_u(T a, unsigned b) {                        \
    return (T)(UT)((UT)a << (b % (sizeof(T) * 8)));                                        \
  }                                                                                        \
  static inline T safe_rshift_func_##T##_##K##_s(T a, int b) {                             \
    return (T)(a >> ((unsigned)b % (sizeof(T) * 8)));                                      \
  }                                                                                        \
  static inline T safe_rshift_func_##T##_##K##_u(T a, unsigned b) {                        \
    return (T)(a >> (b % (sizeof(T) * 8)));                                                \
  }                                                                                        \
  TF_UNARY(T, UT, K)

TF_ARITH(int8_t, uint8_t, s)
TF_ARITH(int16_t, uint16_t, s)
TF_ARITH(int32_t, uint32_t, s)
TF_ARITH(int64_t, uint64_t, s)
TF_ARITH(uint8_t, uint8_t, u)
TF_ARITH(uint16_t, uint16_t, u)
TF_ARITH(uint32_t, uint32_t, u)
TF_ARITH(uint64_t, uint64_t, u)

#endif
