/// 8-wide vector loads and stores for element-wise kernels. The compiler does not vectorize
/// loops over possibly-aliasing raw pointers reliably; these make the vector width explicit.
public typealias Vec8 = SIMD8<Float>

extension UnsafePointer where Pointee == Float {
    @inlinable @inline(__always) public func load8(_ i: Int) -> Vec8 {
        UnsafeRawPointer(self + i).loadUnaligned(as: Vec8.self)
    }
}

extension UnsafeMutablePointer where Pointee == Float {
    @inlinable @inline(__always) public func load8(_ i: Int) -> Vec8 {
        UnsafeRawPointer(self + i).loadUnaligned(as: Vec8.self)
    }
    @inlinable @inline(__always) public func store8(_ i: Int, _ v: Vec8) {
        UnsafeMutableRawPointer(self + i).storeBytes(of: v, as: Vec8.self)
    }
}
