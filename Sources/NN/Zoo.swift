import Config

/// Models by name (`model: resnet_small` in a job file), for 1×28×28 inputs and 10 classes
/// (Fashion-MNIST). Each expands to a plain layer list, which is what checkpoints record.
extension ModelSpec {
    static func L(_ out: Int) -> ConfigValue { .object(["type": .string("linear"), "out": .int(out)]) }
    static func C(_ out: Int, _ k: Int = 3, pad: Int? = nil, bias: Bool = true) -> ConfigValue {
        .object(["type": .string("conv2d"), "out": .int(out), "kernel": .int(k), "padding": .int(pad ?? k / 2), "bias": .bool(bias)])
    }
    static func B(_ type: String, _ opts: KeyValuePairs<String, ConfigValue>) -> ConfigValue {
        .map([ConfigEntry(key: "type", value: .string(type))] + opts.map { ConfigEntry(key: $0.key, value: $0.value) })
    }
    static let image = [1, 28, 28]
    static let flat: ConfigValue = .string("flatten"), relu: ConfigValue = .string("relu"), pool: ConfigValue = .string("maxpool")
    static let bn: ConfigValue = .string("batchnorm"), gap: ConfigValue = .string("global_avgpool")

    public static let zoo: [String: ModelSpec] = [
        // Linear classifiers of the seed table (pair with the logistic, perceptron or hinge loss).
        "logistic_regression": ModelSpec(input: image, layers: [flat, L(10)]),
        "perceptron": ModelSpec(input: image, layers: [flat, L(10)]),
        "linear_svm": ModelSpec(input: image, layers: [flat, L(10)]),
        "mlp": .mlp,
        "lenet": ModelSpec(input: image, layers: [C(6, 5), relu, pool, C(16, 5, pad: 0), relu, pool, flat,
                                                  L(120), relu, L(84), relu, L(10)]),
        // conv16-pool-conv32-pool-fc64-fc10, the PyTorch reference script's CNN (106K parameters).
        "cnn": ModelSpec(input: image, layers: [C(16), relu, pool, C(32), relu, pool, flat, L(64), relu, L(10)]),
        // Convolutions with BatchNorm and pooling, 87K parameters.
        "cnn_bn": ModelSpec(input: image, layers: [C(32, bias: false), bn, relu, pool, C(64, bias: false), bn, relu, pool,
                                                   C(64, bias: false), bn, relu, flat, .object(["type": "dropout", "p": 0.3]), L(10)]),
        "vgg_small": ModelSpec(input: image, layers: [B("vgg_block", ["out": .int(16), "convs": .int(2), "batchnorm": .bool(true)]),
                                                      B("vgg_block", ["out": .int(32), "convs": .int(2), "batchnorm": .bool(true)]),
                                                      flat, L(64), relu, L(10)]),
        "inception_small": ModelSpec(input: image, layers: [C(16), relu, pool,
                                                            B("inception", ["b1": .int(8), "b3r": .int(8), "b3": .int(16), "b5r": .int(4), "b5": .int(8), "pool": .int(8)]),
                                                            pool, gap, L(10)]),
        "resnet_small": ModelSpec(input: image, layers: [C(16, bias: false), bn, relu,
                                                         B("resnet_basic", ["out": .int(16)]), B("resnet_basic", ["out": .int(32), "stride": .int(2)]),
                                                         B("resnet_basic", ["out": .int(64), "stride": .int(2)]), gap, L(10)]),
        "resnet_bottleneck_small": ModelSpec(input: image, layers: [C(16, bias: false), bn, relu,
                                                                    B("resnet_bottleneck", ["out": .int(64), "width": .int(16)]),
                                                                    B("resnet_bottleneck", ["out": .int(64), "width": .int(16), "stride": .int(2)]),
                                                                    gap, L(10)]),
        "resnext_small": ModelSpec(input: image, layers: [C(16, bias: false), bn, relu,
                                                          B("resnext_block", ["out": .int(64), "cardinality": .int(8), "width": .int(4), "stride": .int(2)]),
                                                          gap, L(10)]),
        "densenet_small": ModelSpec(input: image, layers: [C(16, bias: false), B("dense_block", ["growth": .int(8), "layers": .int(4)]),
                                                           bn, relu, pool, gap, L(10)]),
        "mobilenetv2_small": ModelSpec(input: image, layers: [C(16, bias: false), bn, .string("relu6"),
                                                              B("inverted_residual", ["out": .int(16), "expand": .int(1)]),
                                                              B("inverted_residual", ["out": .int(24), "stride": .int(2)]),
                                                              B("inverted_residual", ["out": .int(24)]),
                                                              gap, L(10)]),
    ]
}
